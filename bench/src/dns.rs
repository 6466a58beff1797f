//! rkube-bench-dns: how fast `rkube-dns` answers Service names from its
//! caches, and what those caches cost.
//!
//! Starts etcd, `rkube-apiserver` and `rkube-dns` as processes, creates N
//! ClusterIP Services, each with an EndpointSlice of three endpoints (what
//! the EndpointSlice controller would write), waits until rkube-dns has them
//! all, then asks `<svc-i>.default.svc.cluster.local A` over UDP from 1 and
//! from 32 concurrent clients (one socket each, one query in flight each):
//! answers per second and latency percentiles. Memory: rkube-dns' RSS idle,
//! after following the creates through its watches, and of a fresh rkube-dns
//! started over the same objects.

use anyhow::{Context as _, ensure};
use clap::Parser;
use rkube_api::resource::lookup;
use rkube_bench::{Daemon, drive, percentile, rss_kib, start_apiserver, start_daemon};
use rkube_client::Client;
use rkube_testkit::{Etcd, free_port, http_get, wait_for};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

#[derive(Debug, Parser)]
#[command(about = "rkube-dns benchmark")]
struct Args {
    /// Directory with the binaries (rkube-apiserver, rkube-dns).
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// The rkube-dns binary (default: rkube-dns in --bin-dir).
    #[arg(long)]
    dns_bin: Option<PathBuf>,
    /// Services (each with one EndpointSlice) created.
    #[arg(long, default_value_t = 5000)]
    services: usize,
    /// Queries per concurrency level.
    #[arg(long, default_value_t = 100_000)]
    queries: usize,
    /// Concurrent clients to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    concurrency: Vec<usize>,
}

fn service(i: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("svc-{i}"), "namespace": "default", "labels": {"app": format!("app-{i}")}},
        "spec": {"selector": {"app": format!("app-{i}")},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}, {"name": "metrics", "port": 9100}]}
    }))
    .expect("serializes")
}

fn slice(i: usize) -> Vec<u8> {
    let endpoints: Vec<serde_json::Value> = (0..3)
        .map(|e| {
            serde_json::json!({"addresses": [format!("10.{}.{}.{}", 1 + i / 60_000, (i / 250) % 240, 1 + e * 80 + i % 80)],
            "conditions": {"ready": true, "serving": true, "terminating": false},
            "nodeName": format!("node-{}", e), "targetRef": {"kind": "Pod", "namespace": "default", "name": format!("app-{i}-{e}")}})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("svc-{i}-abcde"), "namespace": "default",
            "labels": {"kubernetes.io/service-name": format!("svc-{i}"),
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "metrics", "port": 9100, "protocol": "TCP"}]
    }))
    .expect("serializes")
}

/// A DNS query for `name` (A, class IN, RD), with ID 0 (set per send).
fn query(name: &str) -> Vec<u8> {
    let mut q = vec![0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        q.push(u8::try_from(label.len()).expect("short labels"));
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Asks `queries[i]` (with ID `id`) on `socket` and checks the answer: a
/// NOERROR response with one A record.
async fn ask(socket: &UdpSocket, query: &[u8], id: u16) -> anyhow::Result<()> {
    let mut q = query.to_vec();
    q[..2].copy_from_slice(&id.to_be_bytes());
    socket.send(&q).await?;
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buf)).await.context("no answer in 2s")??;
    ensure!(n >= 12 && buf[..2] == id.to_be_bytes(), "not the answer to this query");
    ensure!(buf[3] & 0x0f == 0, "rcode {}", buf[3] & 0x0f);
    ensure!(u16::from_be_bytes([buf[6], buf[7]]) == 1, "one A record");
    Ok(())
}

/// `total` queries from `clients` tasks, each with its own socket and one
/// query in flight, cycling through `queries`: sorted latencies, wall time.
async fn load(
    dns: SocketAddr,
    queries: Arc<Vec<Vec<u8>>>,
    total: usize,
    clients: usize,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        socket.connect(dns).await?;
        let queries = queries.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(total / clients + 1);
            for k in (client..total).step_by(clients) {
                let t = Instant::now();
                ask(&socket, &queries[k % queries.len()], k as u16).await?;
                lat.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await??);
    }
    let took = started.elapsed();
    all.sort();
    Ok((all, took))
}

/// The value of the first metric line starting with `prefix` on `url`'s /metrics.
async fn metric(url: &str, prefix: &str) -> Option<f64> {
    let (_, text) = http_get(&format!("{url}/metrics")).await.ok()?;
    text.lines().find(|l| l.starts_with(prefix))?.rsplit(' ').next()?.parse().ok()
}

async fn start_dns(bin: &Path, server: &str, dns: SocketAddr) -> anyhow::Result<Daemon> {
    let dns = dns.to_string();
    let args = ["--server", server, "--dns-bind-address", &dns, "--upstream", "127.0.0.1:9"];
    start_daemon(bin, &args, "--healthz-bind-address", "/readyz").await
}

/// Waits until rkube-dns at `url` caches `n` Services and `n` EndpointSlices.
async fn wait_cached(url: &str, n: usize) -> anyhow::Result<Duration> {
    let t = Instant::now();
    wait_for(Duration::from_secs(120), || async {
        let services = metric(url, "rkube_dns_cache_objects{kind=\"services\"}").await.unwrap_or(0.0);
        let slices = metric(url, "rkube_dns_cache_objects{kind=\"endpointslices\"}").await.unwrap_or(0.0);
        services >= n as f64 && slices >= n as f64
    })
    .await
    .context("rkube-dns never cached every Service and EndpointSlice")?;
    Ok(t.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dns_bin = args.dns_bin.clone().unwrap_or_else(|| args.bin_dir.join("rkube-dns"));
    let etcd = Etcd::start().await?;
    let api = start_apiserver(&args.bin_dir, &etcd.url()).await?;
    let client = Client::new(&api.url)?;
    let dns_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let dns = start_dns(&dns_bin, &api.url, dns_addr).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = rss_kib(dns.child.id())?;

    let n = args.services;
    let t = Instant::now();
    let (services, slices) = (lookup("services")?, lookup("endpointslices")?);
    let cl = client.clone();
    drive(n, 32, move |i| {
        let cl = cl.clone();
        async move {
            cl.create(services, "default", service(i)).await?;
            cl.create(slices, "default", slice(i)).await?;
            Ok(())
        }
    })
    .await?;
    let created = t.elapsed();
    let lag = wait_cached(&dns.url, n).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let watched_rss = rss_kib(dns.child.id())?;
    println!(
        "rkube-dns {}: {n} Services + {n} EndpointSlices created in {:.1}s (cached {:.0} ms after the last create)\n",
        dns_bin.display(),
        created.as_secs_f64(),
        lag.as_secs_f64() * 1e3
    );

    println!("| clients | queries | answers/s | p50 | p99 | max |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let queries: Arc<Vec<Vec<u8>>> =
        Arc::new((0..n).map(|i| query(&format!("svc-{i}.default.svc.cluster.local."))).collect());
    for &c in &args.concurrency {
        let (lat, took) = load(dns_addr, queries.clone(), args.queries, c).await?;
        println!(
            "| {c} | {} | {:.0} | {:.3} ms | {:.3} ms | {:.3} ms |",
            lat.len(),
            lat.len() as f64 / took.as_secs_f64(),
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
    }
    let loaded_rss = rss_kib(dns.child.id())?;
    drop(dns);

    let fresh_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let t = Instant::now();
    let fresh = start_dns(&dns_bin, &api.url, fresh_addr).await?;
    let synced = t.elapsed();
    wait_cached(&fresh.url, n).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fresh_rss = rss_kib(fresh.child.id())?;
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "\nrkube-dns RSS: idle {:.1} MiB; after following {n} Services + {n} slices through its watches {:.1} MiB; \
         after the query load {:.1} MiB; a fresh rkube-dns over them {:.1} MiB (ready in {:.0} ms)",
        mib(idle_rss),
        mib(watched_rss),
        mib(loaded_rss),
        mib(fresh_rss),
        synced.as_secs_f64() * 1e3
    );
    Ok(())
}
