//! rkube-bench-namespaces: how long a namespace full of objects takes to go.
//!
//! Starts etcd, `rkube-apiserver` and `rkube-controller-manager` (every
//! default controller) as processes, N
//! hollow nodes (rkubelet's fake runtime, in this process). Each round
//! fills a fresh namespace with `--objects` objects — a fifth each pods,
//! ConfigMaps, Secrets, Services and ReplicationControllers of no replicas
//! — created by 32 clients, then deletes the namespace and times until a
//! read says it is gone (the namespace controller has deleted everything in
//! it through the API and removed its finalizer). Two rounds: the pods never
//! scheduled (deleted at once), then, with `rkube-scheduler` started,
//! running on the hollow nodes (deleted gracefully: each hollow kubelet
//! stops the pod and removes it).

use clap::Parser;
use futures::StreamExt;
use rkube_api::resource::lookup;
use rkube_bench::{drive, ready_nodes, start_apiserver, start_controller_manager, start_daemon};
use rkube_client::{Client, ListParams, Reason, WatchEventType};
use rkube_testkit::{Etcd, wait_for};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(about = "rkube namespace deletion benchmark")]
struct Args {
    /// Directory with the release binaries.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Objects in the namespace (a fifth of each kind).
    #[arg(long, default_value_t = 1000)]
    objects: usize,
    /// Hollow nodes for the round with running pods.
    #[arg(long, default_value_t = 10)]
    nodes: usize,
}

/// The `i`th object of the namespace: its resource and body.
fn object(i: usize) -> (&'static str, Value) {
    let name = format!("o-{i}");
    match i % 5 {
        0 => (
            "pods",
            json!({"metadata": {"name": name, "labels": {"app": "bench"}},
                "spec": {"containers": [{"name": "c", "image": "rkube/toolbox:1.0"}]}}),
        ),
        1 => ("configmaps", json!({"metadata": {"name": name}, "data": {"key": "value"}})),
        2 => ("secrets", json!({"metadata": {"name": name}, "data": {"key": "dmFsdWU="}})),
        3 => (
            "services",
            json!({"metadata": {"name": name}, "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}}),
        ),
        _ => (
            "replicationcontrollers",
            json!({"metadata": {"name": name}, "spec": {"replicas": 0, "selector": {"app": name},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "rkube/toolbox:1.0"}]}}}}),
        ),
    }
}

/// Waits until `count` pods of `ns` are Running.
async fn running(client: &Client, ns: &str, count: usize) -> anyhow::Result<()> {
    let pods = lookup("pods")?;
    let mut watch = Box::pin(client.watch(pods, ns, &ListParams::default(), "").await?);
    let mut seen = HashSet::new();
    while seen.len() < count {
        let ev = tokio::time::timeout(Duration::from_secs(300), watch.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("watch ended"))??;
        let v: Value = serde_json::from_slice(&ev.object.json)?;
        if ev.kind != WatchEventType::Deleted && v["status"]["phase"] == "Running" {
            seen.insert(ev.object.name.clone());
        }
    }
    Ok(())
}

/// Fills namespace `ns` with `objects` objects, waits for the pods to run
/// if `schedule` (a scheduler runs), then
/// deletes it: returns (create time, deletion time).
async fn round(client: &Client, ns: &str, objects: usize, schedule: bool) -> anyhow::Result<(Duration, Duration)> {
    let namespaces = lookup("namespaces")?;
    client.create(namespaces, "", serde_json::to_vec(&json!({"metadata": {"name": ns}}))?).await?;
    let t0 = Instant::now();
    let (cl, namespace) = (client.clone(), ns.to_string());
    drive(objects, 32, move |i| {
        let (cl, namespace) = (cl.clone(), namespace.clone());
        async move {
            let (plural, body) = object(i);
            cl.create(lookup(plural)?, &namespace, serde_json::to_vec(&body)?).await?;
            Ok(())
        }
    })
    .await?;
    let created = t0.elapsed();
    if schedule {
        running(client, ns, objects.div_ceil(5)).await?;
    }
    let t0 = Instant::now();
    client.delete(namespaces, "", ns, &Default::default()).await?;
    wait_for(Duration::from_secs(600), || async {
        matches!(client.get(namespaces, "", ns).await, Err(e) if e.reason == Reason::NotFound)
    })
    .await?;
    Ok((created, t0.elapsed()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let etcd = Etcd::start().await?;
    let api = start_apiserver(&args.bin_dir, &etcd.url()).await?;
    let client = Client::new(&api.url)?;
    let _cm = start_controller_manager(&args.bin_dir, &api.url).await?;
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
    let n = args.objects;
    println!(
        "| namespace of {n} objects (pods, ConfigMaps, Secrets, Services, RCs: {} each) | created by 32 clients | DELETE → gone |",
        n / 5
    );
    println!("|---|---:|---:|");
    let (created, deleted) = round(&client, "unscheduled", n, false).await?;
    println!(
        "| pods never scheduled (deleted at once) | {:.2} s | {:.2} s |",
        created.as_secs_f64(),
        deleted.as_secs_f64()
    );
    // The scheduler only now, so that the first round's pods stayed unbound.
    let _sched = start_daemon(
        &args.bin_dir.join("rkube-scheduler"),
        &["--server", &api.url],
        "--healthz-bind-address",
        "/healthz",
    )
    .await?;
    let (created, deleted) = round(&client, "running", n, true).await?;
    println!(
        "| pods Running on {} hollow nodes (deleted gracefully through their kubelets) | {:.2} s | {:.2} s |",
        args.nodes,
        created.as_secs_f64(),
        deleted.as_secs_f64()
    );
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), hollow_task).await;
    Ok(())
}
