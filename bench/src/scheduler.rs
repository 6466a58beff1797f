//! rkube-bench-scheduler: how fast `rkube-scheduler` binds pods on hollow nodes.
//!
//! Starts etcd, `rkube-apiserver` and `rkube-scheduler` as processes, and N
//! hollow nodes (rkubelet's fake runtime, in this process, like kubemark)
//! that register, heartbeat and "run" what is bound to them. Then creates
//! pods from 32 concurrent clients and follows a watch to see each one bound:
//! pods bound per second (first create to last binding) and creation→bound
//! latency percentiles; finally the scheduler's resident memory.

use clap::Parser;
use futures::StreamExt;
use rkube_api::resource::lookup;
use rkube_bench::{drive, percentile, ready_nodes, rss_kib, start_apiserver, start_controller_manager, start_daemon};
use rkube_client::{Client, ListParams, WatchEventType};
use rkube_testkit::{Etcd, wait_for};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(about = "rkube scheduler benchmark on hollow nodes")]
struct Args {
    /// Directory with the release binaries.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Hollow node counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    nodes: Vec<usize>,
    /// Pods created per measurement.
    #[arg(long, default_value_t = 3000)]
    pods: usize,
}

fn pod(name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "sched-bench"}},
        "spec": {"containers": [{"name": "c", "image": "rkube/toolbox:1.0",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
    }))
    .expect("serializes")
}

async fn measure(args: &Args, n_nodes: usize) -> anyhow::Result<()> {
    let etcd = Etcd::start().await?;
    let api = start_apiserver(&args.bin_dir, &etcd.url()).await?;
    let client = Client::new(&api.url)?;
    let _cm = start_controller_manager(&args.bin_dir, &api.url).await?;
    let shutdown = CancellationToken::new();
    let hollow = rkube_kubelet::HollowNodes::new("bench", n_nodes);
    let hollow_task = {
        let (client, shutdown) = (client.clone(), shutdown.clone());
        tokio::spawn(async move { hollow.run(client, shutdown).await })
    };
    let t = Instant::now();
    wait_for(Duration::from_secs(300), || {
        let client = client.clone();
        async move { ready_nodes(&client).await >= n_nodes }
    })
    .await?;
    let nodes_ready = t.elapsed();
    let sched = start_daemon(
        &args.bin_dir.join("rkube-scheduler"),
        &["--server", &api.url],
        "--healthz-bind-address",
        "/healthz",
    )
    .await?;

    // Follow bindings.
    let pods = lookup("pods")?;
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let start_rv = client.list(pods, "default", &ListParams { limit: 1, ..Default::default() }).await?.resource_version;
    let mut watch = Box::pin(client.watch(pods, "default", &ListParams::default(), &start_rv).await?);
    let total = args.pods;
    let follower = {
        let created = created.clone();
        tokio::spawn(async move {
            let mut bound: HashMap<String, Instant> = HashMap::new();
            while bound.len() < total {
                let Some(ev) = watch.next().await else { break };
                let Ok(ev) = ev else { break };
                if ev.kind == WatchEventType::Modified && !bound.contains_key(&ev.object.name) {
                    let v: serde_json::Value = serde_json::from_slice(&ev.object.json).unwrap_or_default();
                    if v["spec"]["nodeName"].as_str().is_some_and(|n| !n.is_empty()) {
                        bound.insert(ev.object.name.clone(), Instant::now());
                    }
                }
            }
            let created = created.lock().unwrap_or_else(|p| p.into_inner()).clone();
            (bound, created)
        })
    };
    let t0 = Instant::now();
    let cl = client.clone();
    let stamps = created.clone();
    drive(total, 32, move |i| {
        let cl = cl.clone();
        let stamps = stamps.clone();
        async move {
            let name = format!("p-{i}");
            stamps.lock().unwrap_or_else(|p| p.into_inner()).insert(name.clone(), Instant::now());
            cl.create(pods, "default", pod(&name)).await?;
            Ok(())
        }
    })
    .await?;
    let (bound, created) = tokio::time::timeout(Duration::from_secs(600), follower).await??;
    let last = bound.values().max().copied().unwrap_or(t0);
    let mut lat: Vec<Duration> =
        bound.iter().filter_map(|(name, at)| created.get(name).map(|c| at.saturating_duration_since(*c))).collect();
    lat.sort();
    let rate = bound.len() as f64 / last.duration_since(t0).as_secs_f64();
    let rss = rss_kib(sched.child.id())?;
    println!(
        "| {n_nodes} | {} | {:.0} | {:.0} ms | {:.0} ms | {:.1} MiB | {:.0} s |",
        bound.len(),
        rate,
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        rss as f64 / 1024.0,
        nodes_ready.as_secs_f64(),
    );
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), hollow_task).await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!("{} pods per run, created by 32 concurrent clients\n", args.pods);
    println!(
        "| hollow nodes | pods bound | pods bound/s | create→bound p50 | p99 | scheduler RSS | nodes Ready after |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &args.nodes {
        measure(&args, n).await?;
    }
    Ok(())
}
