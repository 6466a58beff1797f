//! `rkubectl logs`, `exec` and `top` end to end: the real binary, a real
//! apiserver relaying to an in-process rkubelet, and real Docker. The pod
//! uses the host's network, so the node needs no pod network; everything
//! the kubelet made is removed afterwards, also when the test fails.

mod support;

use k8s_openapi::api::core::v1::Pod;
use rkube_client::{Api, Client};
use rkube_kubelet::runtime::Runtime;
use rkube_kubelet::runtime::docker::{DEFAULT_PAUSE_IMAGE, DockerRuntime};
use rkube_kubelet::{App, Args};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;
use support::Cluster;
use tokio_util::sync::CancellationToken;

const TOOLBOX: &str = "rkube/toolbox:1.0";

/// An in-process rkubelet on Docker; on drop it stops and every container
/// of its node and its root dir are removed.
struct Node {
    name: String,
    root_dir: PathBuf,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Node {
    async fn start(server: &str) -> anyhow::Result<Node> {
        use clap::Parser;
        let name = format!("ct-{:08x}", fastrand::u32(..));
        let root_dir = std::env::temp_dir().join(format!("rkubelet-ctl-test-{name}"));
        let args = Args::parse_from([
            "rkubelet".to_string(),
            format!("--server={server}"),
            "--healthz-bind-address=127.0.0.1:0".into(),
            format!("--hostname-override={name}"),
            "--node-ip=127.0.0.1".into(),
            "--runtime=docker".into(),
            format!("--root-dir={}", root_dir.display()),
            "--cluster-cidr=10.252.0.0/16".into(),
            "--port=0".into(),
        ]);
        let shutdown = CancellationToken::new();
        let mut node = Node { name, root_dir, shutdown: shutdown.clone(), task: None };
        let app = App::build(args).await?;
        node.task = Some(tokio::spawn(app.run(shutdown)));
        Ok(node)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let (name, root) = (self.name.clone(), self.root_dir.clone());
        // Drop cannot await: clean up on a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            rt.block_on(async {
                let docker = DockerRuntime::new(&name, DEFAULT_PAUSE_IMAGE);
                // Until none reappear (the kubelet may still be stopping).
                let _ = rkube_testkit::wait_for(Duration::from_secs(20), || async {
                    let found = docker.list_containers().await.unwrap_or_default();
                    for c in &found {
                        let _ = docker.remove_container(&c.id).await;
                    }
                    found.is_empty()
                })
                .await;
            });
            let _ = std::fs::remove_dir_all(root);
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_exec_and_top_reach_the_container_and_exec_passes_on_its_exit_code() -> anyhow::Result<()> {
    let c = Cluster::start().await?;
    let node = Node::start(&c.server.url()).await?;
    let client = Client::new(&c.server.url())?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = json!({"metadata": {"name": "web"}, "spec": {"hostNetwork": true, "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "app", "image": TOOLBOX,
            "command": ["sh", "-c", "echo hello from rkube; sleep 0.1; echo warning >&2; exec sleep 3600"]}]}});
    pods.create(&serde_json::from_value(pod)?).await?;
    client.bind("default", "web", &node.name).await?;
    rkube_testkit::wait_for(Duration::from_secs(60), || async {
        pods.get_opt("web").await.ok().flatten().and_then(|p| p.status).and_then(|s| s.phase).as_deref()
            == Some("Running")
    })
    .await?;

    // The output reaches Docker's log a moment after the container runs.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut logs = c.ok(&["logs", "web"]).await?;
    while !logs.contains("warning") && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        logs = c.ok(&["logs", "web"]).await?;
    }
    assert_eq!(logs, "hello from rkube\nwarning\n");
    assert_eq!(c.ok(&["logs", "pod/web", "-c", "app", "--tail", "1"]).await?, "warning\n");

    let out = c.run(&["exec", "web", "--", "sh", "-c", "echo out; echo err >&2"]).await?;
    assert_eq!((out.stdout.as_str(), out.stderr.as_str(), out.code), ("out\n", "err\n", 0));
    let failed = c.run(&["exec", "web", "--", "sh", "-c", "exit 4"]).await?;
    assert_eq!(failed.code, 4, "the command's exit code is rkubectl's: {failed:?}");
    let piped = c.run_with_stdin(&["exec", "-i", "web", "--", "cat"], "through stdin\n").await?;
    assert_eq!((piped.stdout.as_str(), piped.code), ("through stdin\n", 0), "{piped:?}");

    // top: the pod's row in millicores and MiB; the node's also in percent.
    let top = c.ok(&["top", "pods"]).await?;
    let lines: Vec<Vec<&str>> = top.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["NAME", "CPU(cores)", "MEMORY(bytes)"], "{top}");
    assert_eq!(lines.len(), 2, "{top}");
    assert!(lines[1][0] == "web" && lines[1][1].ends_with('m') && lines[1][2].ends_with("Mi"), "{top}");
    let top = c.ok(&["top", "node", &node.name, "--no-headers"]).await?;
    let cells: Vec<&str> = top.split_whitespace().collect();
    assert_eq!(cells.len(), 5, "{top}");
    assert_eq!(cells[0], node.name);
    assert!(cells[2].ends_with('%') && cells[4].ends_with('%') && cells[3].ends_with("Mi"), "{top}");
    assert_ne!(cells[3], "0Mi", "the node uses memory: {top}");

    let missing = c.run(&["logs", "nope"]).await?;
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("pods \"nope\" not found"), "{}", missing.stderr);
    Ok(())
}
