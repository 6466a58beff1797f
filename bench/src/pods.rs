//! rkube-bench-pods: pod startup on real Docker, beside its floor.
//!
//! Starts etcd, `rkube-apiserver` and one `rkubelet` (real Docker) as
//! processes, then measures create → Running and create → Ready for 1 pod and
//! for 20 pods at once (pause + one app container each, bound to the node at
//! creation), and, in the same run, the floor: the same pause + app
//! containers created and started directly through the Docker API. Finally
//! the kubelet's resident memory with 30 pods running.

use anyhow::Context as _;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, StartContainerOptions};
use clap::Parser;
use futures::StreamExt;
use rkube_api::resource::lookup;
use rkube_bench::{percentile, rss_kib, start_apiserver, start_daemon};
use rkube_client::{Client, ListParams, WatchEventType};
use rkube_testkit::{Etcd, wait_for};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "rkube pod startup benchmark on real Docker")]
struct Args {
    /// Directory with the release binaries.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Rounds of each measurement (medians are over rounds).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

const NODE: &str = "bench-node";
const POD_CIDR: &str = "10.248.7.0/24";
const CLUSTER_CIDR: &str = "10.248.0.0/16";
const APP: &[&str] = &["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && httpd -f -p 8080 -h /www"];

fn pod(name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "startup-bench"}},
        "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 1, "containers": [{
            "name": "app", "image": "rkube/toolbox:1.0", "imagePullPolicy": "Never", "command": APP}]}
    }))
    .expect("serializes")
}

/// Creates `n` pods at once; returns per-pod create→Running and create→Ready.
async fn start_pods(client: &Client, round: usize, n: usize) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let pods = lookup("pods")?;
    let rv = client.list(pods, "default", &ListParams { limit: 1, ..Default::default() }).await?.resource_version;
    let mut watch = Box::pin(client.watch(pods, "default", &ListParams::default(), &rv).await?);
    let mut created = HashMap::new();
    let mut tasks = Vec::new();
    for i in 0..n {
        let name = format!("s{round}-{n}-{i}");
        created.insert(name.clone(), Instant::now());
        let client = client.clone();
        tasks.push(tokio::spawn(async move { client.create(pods, "default", pod(&name)).await }));
    }
    for t in tasks {
        t.await??;
    }
    let (mut running, mut ready) = (HashMap::new(), HashMap::new());
    let deadline = Instant::now() + Duration::from_secs(120);
    while ready.len() < n {
        let ev = tokio::time::timeout_at(deadline.into(), watch.next()).await.context("pods did not become Ready")?;
        let ev = ev.context("watch ended")??;
        if ev.kind != WatchEventType::Modified {
            continue;
        }
        let v: serde_json::Value = serde_json::from_slice(&ev.object.json)?;
        let now = Instant::now();
        if v["status"]["phase"] == "Running" {
            running.entry(ev.object.name.clone()).or_insert(now);
        }
        let is_ready = v["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
        if is_ready {
            ready.entry(ev.object.name.clone()).or_insert(now);
        }
    }
    let since = |m: &HashMap<String, Instant>| -> Vec<Duration> {
        m.iter().filter_map(|(k, at)| created.get(k).map(|c| at.saturating_duration_since(*c))).collect()
    };
    for name in created.keys() {
        let del = rkube_client::DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
        let _ = client.delete(pods, "default", name, &del).await;
    }
    Ok((since(&running), since(&ready)))
}

/// The floor: pause + app created and started through the Docker API, `n` at once.
async fn floor(docker: &Docker, network: &str, round: usize, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let docker = docker.clone();
        let network = network.to_string();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let pause = format!("rkube-bench-floor-{round}-{n}-{i}-pause");
            let opts = CreateContainerOptionsBuilder::default().name(&pause).build();
            let body = ContainerCreateBody {
                image: Some("rkube/pause:3.9".into()),
                labels: Some(HashMap::from([("io.rkube.bench".into(), "floor".into())])),
                host_config: Some(HostConfig { network_mode: Some(network), ..Default::default() }),
                ..Default::default()
            };
            let p = docker.create_container(Some(opts), body).await?;
            docker.start_container(&p.id, None::<StartContainerOptions>).await?;
            let app = format!("rkube-bench-floor-{round}-{n}-{i}-app");
            let opts = CreateContainerOptionsBuilder::default().name(&app).build();
            let body = ContainerCreateBody {
                image: Some("rkube/toolbox:1.0".into()),
                cmd: Some(APP.iter().map(|s| s.to_string()).collect()),
                labels: Some(HashMap::from([("io.rkube.bench".into(), "floor".into())])),
                host_config: Some(HostConfig {
                    network_mode: Some(format!("container:{}", p.id)),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let a = docker.create_container(Some(opts), body).await?;
            docker.start_container(&a.id, None::<StartContainerOptions>).await?;
            Ok::<_, anyhow::Error>(t.elapsed())
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await??);
    }
    remove_floor(docker).await?;
    Ok(out)
}

async fn remove_floor(docker: &Docker) -> anyhow::Result<()> {
    let opts = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&HashMap::from([("label", vec!["io.rkube.bench=floor"])]))
        .build();
    for c in docker.list_containers(Some(opts)).await? {
        if let Some(id) = c.id {
            let rm = RemoveContainerOptionsBuilder::default().force(true).build();
            let _ = docker.remove_container(&id, Some(rm)).await;
        }
    }
    Ok(())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    percentile(v, 0.5)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let docker = Docker::connect_with_local_defaults()?.negotiate_version().await?;
    let etcd = Etcd::start().await?;
    let api = start_apiserver(&args.bin_dir, &etcd.url()).await?;
    let client = Client::new(&api.url)?;
    let root = std::env::temp_dir().join(format!("rkube-bench-pods-{}", std::process::id()));
    let root_s = root.display().to_string();
    let kubelet = start_daemon(
        &args.bin_dir.join("rkubelet"),
        &[
            "--server",
            &api.url,
            "--hostname-override",
            NODE,
            "--node-ip",
            "127.0.0.1",
            "--root-dir",
            &root_s,
            "--pod-cidr",
            POD_CIDR,
            "--cluster-cidr",
            CLUSTER_CIDR,
            "--port",
            "0",
        ],
        "--healthz-bind-address",
        "/healthz",
    )
    .await?;
    let network = format!("rkube-{NODE}");
    wait_for(Duration::from_secs(60), || {
        let docker = docker.clone();
        let network = network.clone();
        async move {
            docker.inspect_network(&network, None::<bollard::query_parameters::InspectNetworkOptions>).await.is_ok()
        }
    })
    .await
    .context("the kubelet did not create its pod network")?;

    let result = async {
        println!("| pods at once | floor (Docker API) median | create→Running median | create→Ready median | all Running | all Ready |");
        println!("|---:|---:|---:|---:|---:|---:|");
        for n in [1usize, 20] {
            let (mut fl, mut run, mut rdy, mut all_run, mut all_rdy) = (vec![], vec![], vec![], vec![], vec![]);
            for round in 0..args.rounds {
                let f = floor(&docker, &network, round, n).await?;
                fl.extend(f);
                let (r, y) = start_pods(&client, round, n).await?;
                all_run.push(*r.iter().max().expect("n > 0"));
                all_rdy.push(*y.iter().max().expect("n > 0"));
                run.extend(r);
                rdy.extend(y);
                // Let the kubelet remove the previous round's containers.
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            println!(
                "| {n} | {} | {} | {} | {} | {} |",
                ms(median(&mut fl)),
                ms(median(&mut run)),
                ms(median(&mut rdy)),
                ms(median(&mut all_run)),
                ms(median(&mut all_rdy))
            );
        }
        // Kubelet memory with 30 pods running.
        let pods = lookup("pods")?;
        for i in 0..30 {
            client.create(pods, "default", pod(&format!("mem-{i}"))).await?;
        }
        wait_for(Duration::from_secs(120), || {
            let client = client.clone();
            async move {
                client.list(pods, "default", &ListParams::default()).await.is_ok_and(|l| {
                    l.items.iter().filter(|o| o.name.starts_with("mem-")).all(|o| {
                        serde_json::from_slice::<serde_json::Value>(&o.json)
                            .is_ok_and(|v| v["status"]["phase"] == "Running")
                    })
                })
            }
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        println!("\nrkubelet RSS with 30 pods running: {:.1} MiB", rss_kib(kubelet.child.id())? as f64 / 1024.0);
        for i in 0..30 {
            let del = rkube_client::DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
            let _ = client.delete(pods, "default", &format!("mem-{i}"), &del).await;
        }
        Ok::<(), anyhow::Error>(())
    }
    .await;

    // Clean up: the kubelet removes deleted pods; then stop it and remove its network.
    let _ = wait_for(Duration::from_secs(30), || {
        let docker = docker.clone();
        async move {
            let opts = bollard::query_parameters::ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&HashMap::from([("label", vec![format!("io.rkube.node={NODE}")])]))
                .build();
            docker.list_containers(Some(opts)).await.is_ok_and(|c| c.is_empty())
        }
    })
    .await;
    drop(kubelet);
    remove_floor(&docker).await?;
    if let Ok(net) = rkube_podnet::PodNetwork::ensure(&docker, NODE, POD_CIDR, CLUSTER_CIDR).await {
        net.teardown(&docker).await?;
    }
    let _ = std::fs::remove_dir_all(&root);
    result
}
