//! rkube-bench-proxy: rkube-proxy's nftables programming at scale.
//!
//! Starts etcd, `rkube-apiserver` and `rkube-proxy` (its own nftables
//! table, deleted at the end) as processes. For each Service count
//! (`--services 1000,5000`), with that many Services of `--endpoints`
//! endpoints each already programmed:
//! 1. **change**: one EndpointSlice update (an endpoint's address changes),
//!    from the API write until the proxy's sync that programmed it has
//!    committed its nft transaction (its `rkube_proxy_syncs_total` moves);
//!    median and worst of `--changes` changes, checked in the kernel;
//! 2. **resync**: a fresh proxy process programs every Service: its full
//!    sync's own duration (one nft transaction), and start → ready;
//! 3. **memory**: the proxy's RSS with every Service programmed.

use anyhow::Context as _;
use clap::Parser;
use rkube_bench::{Daemon, drive, percentile, rss_kib, start_apiserver, start_daemon};
use rkube_client::Client;
use rkube_testkit::{Etcd, http_get, wait_for};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(about = "rkube-proxy benchmark: nftables programming at scale")]
struct Args {
    /// Directory with the release binaries.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Service counts, each measured in turn (Services are added up to each).
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    services: Vec<usize>,
    /// Endpoints per Service.
    #[arg(long, default_value_t = 5)]
    endpoints: usize,
    /// Single-Service changes measured per Service count.
    #[arg(long, default_value_t = 20)]
    changes: usize,
}

/// Deletes the benchmark's table on Drop.
struct TableGuard(String);

impl Drop for TableGuard {
    fn drop(&mut self) {
        let _ = Command::new("sh").arg("-c").arg(format!("nft delete table ip {} 2>/dev/null", self.0)).status();
    }
}

fn service(i: usize) -> Value {
    json!({"metadata": {"name": format!("svc-{i}"), "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
}

/// The slice of Service `i`; `generation` varies the first endpoint's address.
fn slice(i: usize, endpoints: usize, generation: usize) -> Value {
    let eps: Vec<Value> = (0..endpoints)
        .map(|e| {
            let n = i * endpoints + e + if e == 0 { generation * 7919 } else { 0 };
            let ip = format!("10.{}.{}.{}", 64 + (n >> 16) % 64, (n >> 8) & 255, n & 255);
            json!({"addresses": [ip], "conditions": {"ready": true}, "nodeName": "bench-node"})
        })
        .collect();
    json!({"metadata": {"name": format!("svc-{i}-1"), "namespace": "default",
            "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
        "addressType": "IPv4", "endpoints": eps,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
}

/// The sum of the metric lines named `name` (`name value` or `name{…} value`).
/// The proxy's sync-duration histogram's sum.
const SYNC_SUM: &str = "rkube_proxy_sync_proxy_rules_duration_seconds_sum";

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn metrics(proxy: &Daemon) -> String {
    http_get(&format!("{}/metrics", proxy.url)).await.map(|(_, body)| body).unwrap_or_default()
}

async fn start_proxy(bin_dir: &std::path::Path, server: &str, table: &str) -> anyhow::Result<Daemon> {
    let args = [
        "--server",
        server,
        "--table",
        table,
        "--cluster-cidr",
        "10.64.0.0/10",
        "--hostname-override",
        "bench-node",
        "--nodeport-addresses",
        "127.0.0.0/8",
        "--min-sync-period",
        "5ms",
    ];
    start_daemon(&bin_dir.join("rkube-proxy"), &args, "--healthz-bind-address", "/readyz").await
}

/// Creates Services `from..to` and their slices through the API.
async fn create(client: &Client, from: usize, to: usize, endpoints: usize) -> anyhow::Result<()> {
    let services = rkube_api::resource::lookup("services")?;
    let slices = rkube_api::resource::for_kind("discovery.k8s.io/v1", "EndpointSlice")?;
    let client = client.clone();
    drive(to - from, 32, move |k| {
        let client = client.clone();
        let i = from + k;
        async move {
            client.create(services, "default", serde_json::to_vec(&service(i))?).await?;
            client.create(slices, "default", serde_json::to_vec(&slice(i, endpoints, 0))?).await?;
            Ok(())
        }
    })
    .await?;
    Ok(())
}

/// Waits until the proxy has programmed `endpoints` endpoints (the
/// apiserver's own `kubernetes` Service has none without a controller-manager).
async fn wait_programmed(proxy: &Daemon, endpoints: usize) -> anyhow::Result<()> {
    wait_for(Duration::from_secs(300), || async {
        metric(&metrics(proxy).await, "rkube_proxy_endpoints") as usize == endpoints
    })
    .await
    .with_context(|| format!("the proxy did not program {endpoints} endpoints"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let table = format!("rkube-bench-{}", std::process::id());
    let _guard = TableGuard(table.clone());
    let etcd = Etcd::start().await?;
    let api = start_apiserver(&args.bin_dir, &etcd.url()).await?;
    let client = Client::new(&api.url)?;
    let slices = rkube_api::resource::for_kind("discovery.k8s.io/v1", "EndpointSlice")?;
    let mut proxy = start_proxy(&args.bin_dir, &api.url, &table).await?;
    println!("| Services × endpoints | one change p50 | one change max | full sync | start → ready | proxy RSS |");
    println!("|---|---|---|---|---|---|");
    let mut have = 0;
    let mut generation = 0;
    for &n in &args.services {
        create(&client, have, n, args.endpoints).await?;
        have = n;
        wait_programmed(&proxy, n * args.endpoints).await?;

        // One change at a time, spread over the Services.
        let mut took = Vec::new();
        let mut in_proxy = 0.0;
        for c in 0..args.changes {
            generation += 1;
            let i = (c * 7919) % n;
            let m = metrics(&proxy).await;
            let before = metric(&m, "rkube_proxy_syncs_total");
            let sync_before = metric(&m, SYNC_SUM);
            let body = serde_json::to_vec(&slice(i, args.endpoints, generation))?;
            let start = Instant::now();
            client.update(slices, "default", &format!("svc-{i}-1"), body).await?;
            // Polled every millisecond (wait_for's 50 ms would round every figure up).
            while metric(&metrics(&proxy).await, "rkube_proxy_syncs_total") <= before {
                anyhow::ensure!(start.elapsed() < Duration::from_secs(30), "the change was not programmed in 30 s");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            took.push(start.elapsed());
            in_proxy += metric(&metrics(&proxy).await, SYNC_SUM) - sync_before;
        }
        took.sort();
        let text = Command::new("nft").args(["list", "chain", "ip", &table, "services"]).output()?;
        anyhow::ensure!(text.status.success(), "the table is missing");

        // A fresh proxy over the same Services: one full sync.
        drop(proxy);
        let start = Instant::now();
        proxy = start_proxy(&args.bin_dir, &api.url, &table).await?;
        let ready = start.elapsed();
        let m = metrics(&proxy).await;
        let full = metric(&m, SYNC_SUM);
        let programmed = metric(&m, "rkube_proxy_endpoints") as usize;
        anyhow::ensure!(programmed == n * args.endpoints, "the fresh proxy programmed {programmed} endpoints");
        let rss = rss_kib(proxy.child.id())? as f64 / 1024.0;
        println!(
            "| {n} × {} | {:.1} ms | {:.1} ms | {:.2} s | {:.2} s | {rss:.1} MiB |",
            args.endpoints,
            percentile(&took, 0.5).as_secs_f64() * 1000.0,
            took.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
            full,
            ready.as_secs_f64(),
        );
        eprintln!(
            "  chains {} rules {}; the proxy's own sync (diff, netlink batch, kernel commit) {:.1} ms per change on average",
            metric(&m, "rkube_proxy_nft_chains"),
            metric(&m, "rkube_proxy_nft_rules"),
            in_proxy * 1000.0 / args.changes as f64,
        );
    }
    drop(proxy);
    Ok(())
}
