//! rkube-bench-controllers: the workload controllers on hollow nodes.
//!
//! Starts etcd, `rkube-apiserver`, `rkube-scheduler` and
//! `rkube-controller-manager` as processes and N hollow nodes (rkubelet's
//! fake runtime, in this process) that run what is bound to them. Then:
//! 1. **floor**: P pods created straight through the API by 32 clients; time
//!    until all are Running;
//! 2. **rc**: a ReplicationController scaled 0 → P; time until all its pods
//!    are Running; the ratio to the floor;
//! 3. **rollout**: a Deployment of D pods, then a new image with maxSurge 25%
//!    and maxUnavailable 25%; time until the rollout is complete as
//!    `rollout status` judges it;
//! 4. **idle**: with every pod still there, the controller-manager's RSS and
//!    its CPU use over 30 s of quiet.

use clap::Parser;
use futures::StreamExt;
use rkube_api::resource::lookup;
use rkube_bench::{drive, ready_nodes, rss_summary, start_apiserver, start_controller_manager, start_daemon};
use rkube_client::{Client, ListParams, WatchEventType};
use rkube_testkit::{Etcd, wait_for};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(about = "rkube workload controller benchmark on hollow nodes")]
struct Args {
    /// Directory with the release binaries.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Hollow nodes.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Pods of the floor and of the ReplicationController.
    #[arg(long, default_value_t = 3000)]
    pods: usize,
    /// Pods of the Deployment that rolls.
    #[arg(long, default_value_t = 1000)]
    deployment_pods: usize,
    /// Pods in the cluster (topped up by another RC) while idle is measured.
    #[arg(long, default_value_t = 10000)]
    idle_pods: usize,
    /// Seconds of quiet over which the controller-manager's CPU is measured.
    #[arg(long, default_value_t = 30)]
    idle_seconds: u64,
}

fn template(app: &str, image: &str) -> Value {
    json!({"metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": image}]}})
}

/// Waits until `count` pods of namespace `ns` are Running (from a watch
/// that starts with the current pods); returns when the last one was seen.
async fn running(client: &Client, ns: &str, count: usize) -> anyhow::Result<Instant> {
    let pods = lookup("pods")?;
    let mut watch = Box::pin(client.watch(pods, ns, &ListParams::default(), "").await?);
    let mut seen = HashSet::new();
    while seen.len() < count {
        let ev = tokio::time::timeout(Duration::from_secs(600), watch.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("watch ended"))??;
        if ev.kind == WatchEventType::Deleted {
            seen.remove(&ev.object.name);
            continue;
        }
        let v: Value = serde_json::from_slice(&ev.object.json)?;
        if v["status"]["phase"] == "Running" && v["metadata"]["deletionTimestamp"].is_null() {
            seen.insert(ev.object.name.clone());
        }
    }
    Ok(Instant::now())
}

/// CPU time (user + system) of process `pid` so far.
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses): utime is the 14th field, stime the 15th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Ok(Duration::from_millis(ticks * 10))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let etcd = Etcd::start().await?;
    let api = start_apiserver(&args.bin_dir, &etcd.url()).await?;
    let client = Client::new(&api.url)?;
    let cm = start_controller_manager(&args.bin_dir, &api.url).await?;
    let shutdown = CancellationToken::new();
    let hollow = rkube_kubelet::HollowNodes::new("bench", args.nodes);
    let hollow_task = {
        let (client, shutdown) = (client.clone(), shutdown.clone());
        tokio::spawn(async move { hollow.run(client, shutdown).await })
    };
    wait_for(Duration::from_secs(300), || {
        let client = client.clone();
        async move { ready_nodes(&client).await >= args.nodes }
    })
    .await?;
    let _sched = start_daemon(
        &args.bin_dir.join("rkube-scheduler"),
        &["--server", &api.url],
        "--healthz-bind-address",
        "/healthz",
    )
    .await?;
    let namespaces = lookup("namespaces")?;
    for ns in ["floor", "rc", "rollout"] {
        client.create(namespaces, "", serde_json::to_vec(&json!({"metadata": {"name": ns}}))?).await?;
    }
    println!(
        "{} hollow nodes; {} pods (floor and RC), a Deployment of {}\n",
        args.nodes, args.pods, args.deployment_pods
    );

    // 1. The floor: the same number of pods created directly by 32 clients.
    let pods = lookup("pods")?;
    let n = args.pods;
    let waiter = tokio::spawn({
        let client = client.clone();
        async move { running(&client, "floor", n).await }
    });
    let t0 = Instant::now();
    let cl = client.clone();
    drive(n, 32, move |i| {
        let cl = cl.clone();
        async move {
            let mut pod = template("floor", "rkube/toolbox:1.0");
            pod["metadata"]["name"] = json!(format!("p-{i}"));
            cl.create(pods, "floor", serde_json::to_vec(&pod)?).await?;
            Ok(())
        }
    })
    .await?;
    let floor = waiter.await??.duration_since(t0);

    // 2. An RC scaled from 0 to the same number.
    let rcs = lookup("replicationcontrollers")?;
    let rc = json!({"metadata": {"name": "burst"},
        "spec": {"replicas": 0, "selector": {"app": "burst"}, "template": template("burst", "rkube/toolbox:1.0")}});
    client.create(rcs, "rc", serde_json::to_vec(&rc)?).await?;
    let waiter = tokio::spawn({
        let client = client.clone();
        async move { running(&client, "rc", n).await }
    });
    let t0 = Instant::now();
    client.patch(rcs, "rc", "burst", &json!({"spec": {"replicas": n}}), false).await?;
    let rc_time = waiter.await??.duration_since(t0);
    println!("| measurement | time | ratio to the floor |");
    println!("|---|---:|---:|");
    println!("| {n} pods created directly by 32 clients → all Running (floor) | {:.1} s | 1.00 |", floor.as_secs_f64());
    println!(
        "| RC scaled 0 → {n} → all Running | {:.1} s | {:.2} |",
        rc_time.as_secs_f64(),
        rc_time.as_secs_f64() / floor.as_secs_f64()
    );

    // 3. A Deployment rolls to a new image.
    let deployments = lookup("deployments")?;
    let d = args.deployment_pods;
    let deployment = json!({"metadata": {"name": "roll"},
        "spec": {"replicas": d, "selector": {"matchLabels": {"app": "roll"}}, "template": template("roll", "rkube/toolbox:1.0"),
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}});
    client.create(deployments, "rollout", serde_json::to_vec(&deployment)?).await?;
    let complete = |image: &'static str| {
        let client = client.clone();
        async move {
            let Ok(o) = client.get(deployments, "rollout", "roll").await else { return false };
            let v: Value = serde_json::from_slice(&o.json).unwrap_or_default();
            let s = &v["status"];
            v["spec"]["template"]["spec"]["containers"][0]["image"] == image
                && s["observedGeneration"] == v["metadata"]["generation"]
                && [&s["updatedReplicas"], &s["replicas"], &s["availableReplicas"]]
                    .iter()
                    .all(|c| c.as_u64() == Some(d as u64))
        }
    };
    wait_for(Duration::from_secs(600), || complete("rkube/toolbox:1.0")).await?;
    let t0 = Instant::now();
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "rkube/toolbox:latest"}]}}}});
    client.patch(deployments, "rollout", "roll", &patch, false).await?;
    wait_for(Duration::from_secs(600), || complete("rkube/toolbox:latest")).await?;
    println!(
        "| Deployment of {d} rolled to a new image (maxSurge 25%, maxUnavailable 25%) | {:.1} s | — |",
        t0.elapsed().as_secs_f64()
    );

    // 4. Idle: memory and CPU with everything in place, topped up to --idle-pods.
    let stored = client.list(pods, "", &ListParams::default()).await?.items.len();
    if args.idle_pods > stored {
        let more = args.idle_pods - stored;
        let filler = json!({"metadata": {"name": "filler"},
            "spec": {"replicas": more, "selector": {"app": "filler"}, "template": template("filler", "rkube/toolbox:1.0")}});
        let waiter = tokio::spawn({
            let client = client.clone();
            async move { running(&client, "filler", more).await }
        });
        client.create(namespaces, "", serde_json::to_vec(&json!({"metadata": {"name": "filler"}}))?).await?;
        client.create(rcs, "filler", serde_json::to_vec(&filler)?).await?;
        waiter.await??;
    }
    let stored = client.list(pods, "", &ListParams::default()).await?.items.len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pid = cm.child.id();
    let (cpu0, t0) = (cpu_time(pid)?, Instant::now());
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let cpu = cpu_time(pid)?.saturating_sub(cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
    let rss = rss_summary(pid)?;
    // A fresh controller-manager over the same cluster: its caches filled
    // by one list, without the allocator's high-water mark of the scenario.
    drop(cm);
    let fresh = start_controller_manager(&args.bin_dir, &api.url).await?;
    tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
    let fresh_rss = rss_summary(fresh.child.id())?;
    println!("\nfresh controller-manager over the same {stored} pods, after {} s: {fresh_rss}", args.idle_seconds);
    println!(
        "\ncontroller-manager, every controller on, {stored} pods: {rss}, idle CPU {:.2}% over {} s",
        cpu * 100.0,
        args.idle_seconds
    );
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), hollow_task).await;
    Ok(())
}
