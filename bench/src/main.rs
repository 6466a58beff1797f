//! rkube-bench: measures the control plane on this machine, beside its floor.
//!
//! `apiserver` starts a real etcd (on free loopback ports) and the real
//! `rkube-apiserver` binary, then measures, in one run:
//! - pod creates through the apiserver at 1, 8 and 64 concurrent clients,
//!   side by side with raw etcd puts of the same JSON at the same concurrency;
//! - watch fan-out: 100 watchers of pods, delivery latency from the write;
//! - apiserver resident memory idle and with 10,000 pods stored;
//! - `secure` (not in the default phases): creates at 8 and 64 clients on
//!   the plain apiserver beside a second one on the same etcd with TLS,
//!   client-certificate authentication and RBAC, as a user RBAC decides for
//!   (the controller manager's certificate, not system:masters).
//!
//! See bench/README.md for how to run it and the last figures.

use anyhow::Context as _;
use clap::Parser;
use futures::StreamExt;
use rkube_api::resource::lookup;
use rkube_bench::{drive, percentile, rss_kib, start_daemon};
use rkube_client::{Client, ListParams};
use rkube_testkit::Etcd;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Parser)]
#[command(about = "rkube benchmarks")]
struct Args {
    /// The rkube-apiserver binary to measure.
    #[arg(long, default_value = "target/release/rkube-apiserver")]
    apiserver_bin: PathBuf,
    /// Operations per concurrency level.
    #[arg(long, default_value_t = 4000)]
    ops: usize,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    concurrency: Vec<usize>,
    /// Watchers in the fan-out test.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Pods stored for the memory figure.
    #[arg(long, default_value_t = 10_000)]
    stored_pods: usize,
    /// Which measurements to run.
    #[arg(long, value_delimiter = ',', default_value = "creates,watch,memory")]
    phases: Vec<String>,
}

/// A pod of about 2 KB, like a real one.
fn pod_json(name: &str, stamp: u128) -> Vec<u8> {
    let env: Vec<serde_json::Value> = (0..28)
        .map(|i| serde_json::json!({"name": format!("SETTING_{i}"), "value": format!("value-{i}-abcdefgh")}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default",
            "labels": {"app": "bench", "tier": "backend", "release": "stable"},
            "annotations": {"bench/stamp": stamp.to_string(), "description": "a pod created by rkube-bench to measure the apiserver"}},
        "spec": {"containers": [
            {"name": "app", "image": "rkube/toolbox:1.0", "command": ["sh", "-c", "httpd -f -p 8080"],
             "ports": [{"name": "http", "containerPort": 8080}], "env": env,
             "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}},
             "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "initialDelaySeconds": 5}},
            {"name": "sidecar", "image": "rkube/toolbox:1.0", "command": ["sh", "-c", "while true; do sleep 3600; done"]}
        ]}
    }))
    .expect("serializes")
}

fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let etcd = Etcd::start().await?;
    let api = start_daemon(&args.apiserver_bin, &["--etcd-servers", &etcd.url(), "--plain-http"], "--port", "/readyz")
        .await?;
    let pid = api.child.id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = rss_kib(pid)?;
    let client = Client::new(&api.url)?;
    let pods = lookup("pods")?;
    let body_len = pod_json("x", 0).len();
    println!("apiserver pid {pid}; pod JSON: {body_len} bytes; {} ops per level\n", args.ops);
    let phase = |p: &str| args.phases.iter().any(|x| x == p);
    println!(
        "| clients | raw etcd puts/s | etcd p50 | etcd p99 | apiserver creates/s | create p50 | create p99 | ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (round, &c) in args.concurrency.iter().enumerate().filter(|_| phase("creates")) {
        let etcd_client = etcd_client::Client::connect([etcd.url()], None).await?;
        let raw = drive(args.ops, c, move |i| {
            let mut kv = etcd_client.kv_client();
            async move {
                let key = format!("/bench/raw/{round}/{i}");
                kv.put(key, pod_json(&format!("raw-{round}-{i}"), 0), None).await?;
                Ok(())
            }
        })
        .await?;
        let cl = client.clone();
        let api_run = drive(args.ops, c, move |i| {
            let cl = cl.clone();
            async move {
                cl.create(pods, "default", pod_json(&format!("p-{round}-{i}"), 0)).await?;
                Ok(())
            }
        })
        .await?;
        println!(
            "| {c} | {:.0} | {:.2} ms | {:.2} ms | {:.0} | {:.2} ms | {:.2} ms | {:.0}% |",
            raw.ops_per_sec,
            raw.p50.as_secs_f64() * 1e3,
            raw.p99.as_secs_f64() * 1e3,
            api_run.ops_per_sec,
            api_run.p50.as_secs_f64() * 1e3,
            api_run.p99.as_secs_f64() * 1e3,
            100.0 * api_run.ops_per_sec / raw.ops_per_sec
        );
    }

    if phase("watch") {
        watch_fan_out(&client, args.watchers).await?;
    }
    if phase("memory") {
        memory(&client, pid, idle_rss, args.stored_pods).await?;
    }
    if phase("secure") {
        secure(&args, &etcd, &client).await?;
    }
    Ok(())
}

/// Creates through the plain apiserver (`plain`) and through a TLS + RBAC
/// one on the same etcd, round by round, side by side.
async fn secure(args: &Args, etcd: &Etcd, plain: &Client) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("rkube-bench-pki-{}", std::process::id()));
    let port = rkube_testkit::free_port();
    let pki = rkube_pki::Pki { dir: dir.clone(), server: format!("https://127.0.0.1:{port}"), ..Default::default() };
    pki.ensure()?;
    let f = |name: &str| dir.join(name).display().to_string();
    let (cert, key, ca, port_arg) = (f("apiserver.crt"), f("apiserver.key"), f("ca.crt"), port.to_string());
    let tls_args = [
        "--etcd-servers",
        &etcd.url(),
        "--port",
        &port_arg,
        "--tls-cert-file",
        &cert,
        "--tls-private-key-file",
        &key,
        "--client-ca-file",
        &ca,
    ];
    // Readiness is probed on the plain loopback port.
    let _secure = start_daemon(&args.apiserver_bin, &tls_args, "--insecure-port", "/readyz").await?;
    let cfg = rkube_client::ClientConfig::from_kubeconfig(&dir.join("controller-manager.kubeconfig"))?;
    let secure = Client::from_config(&cfg)?;
    let pods = lookup("pods")?;
    println!("\n| clients | plain creates/s | p50 | p99 | TLS + RBAC creates/s | p50 | p99 | ratio |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &c in args.concurrency.iter().filter(|&&c| c > 1) {
        let mut runs = Vec::new();
        for (name, client) in [("plain", plain), ("secure", &secure)] {
            let cl = client.clone();
            runs.push(
                drive(args.ops, c, move |i| {
                    let cl = cl.clone();
                    async move {
                        cl.create(pods, "default", pod_json(&format!("{name}-{c}-{i}"), 0)).await?;
                        Ok(())
                    }
                })
                .await?,
            );
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let (p, s) = (&runs[0], &runs[1]);
        println!(
            "| {c} | {:.0} | {:.2} ms | {:.2} ms | {:.0} | {:.2} ms | {:.2} ms | {:.0}% |",
            p.ops_per_sec,
            ms(p.p50),
            ms(p.p99),
            s.ops_per_sec,
            ms(s.p50),
            ms(s.p99),
            100.0 * s.ops_per_sec / p.ops_per_sec
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// 100 watchers of pods; delivery latency from the write to each watcher.
async fn watch_fan_out(client: &Client, watchers_n: usize) -> anyhow::Result<()> {
    let pods = lookup("pods")?;
    let start_rv = client.list(pods, "default", &ListParams { limit: 1, ..Default::default() }).await?.resource_version;
    let events = 200usize;
    let mut watchers = Vec::new();
    for _ in 0..watchers_n {
        let mut stream =
            Box::pin(client.watch(pods, "default", &ListParams::default().labels("app=fanout"), &start_rv).await?);
        watchers.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(events);
            while lat.len() < events {
                let ev = stream.next().await.context("watch ended")??;
                let v: serde_json::Value = serde_json::from_slice(&ev.object.json)?;
                let stamp: u128 = v["metadata"]["annotations"]["bench/stamp"].as_str().unwrap_or("0").parse()?;
                lat.push(Duration::from_nanos((now_nanos().saturating_sub(stamp)) as u64));
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    for i in 0..events {
        let mut body: serde_json::Value = serde_json::from_slice(&pod_json(&format!("fan-{i}"), now_nanos()))?;
        body["metadata"]["labels"]["app"] = "fanout".into();
        client.create(pods, "default", serde_json::to_vec(&body)?).await?;
        // About 200 writes per second: the latency of delivery, not of a backlog.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut all = Vec::new();
    for w in watchers {
        all.extend(w.await??);
    }
    all.sort();
    println!(
        "\nwatch fan-out: {} watchers x {events} events ({} deliveries in {:.1}s): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        watchers_n,
        all.len(),
        t.elapsed().as_secs_f64(),
        percentile(&all, 0.5).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );

    Ok(())
}

/// Resident memory of the apiserver with `stored` pods in etcd.
async fn memory(client: &Client, pid: u32, idle_rss: u64, stored: usize) -> anyhow::Result<()> {
    let pods = lookup("pods")?;
    let have = client.list(pods, "", &ListParams::default()).await?.items.len();
    let cl = client.clone();
    let more = stored.saturating_sub(have);
    drive(more, 32, move |i| {
        let cl = cl.clone();
        async move {
            cl.create(pods, "default", pod_json(&format!("mem-{i}"), 0)).await?;
            Ok(())
        }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stored_rss = rss_kib(pid)?;
    let t = Instant::now();
    let listed = client.list(pods, "", &ListParams::default()).await?.items.len();
    let list_took = t.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_list_rss = rss_kib(pid)?;
    println!(
        "\napiserver RSS: idle {:.1} MiB; with {listed} pods stored {:.1} MiB; \
         after listing them all in one request ({:.0} ms) {:.1} MiB",
        idle_rss as f64 / 1024.0,
        stored_rss as f64 / 1024.0,
        list_took.as_secs_f64() * 1e3,
        after_list_rss as f64 / 1024.0,
    );
    Ok(())
}
