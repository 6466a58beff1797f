//! rkube-bench-service-throughput: traffic through a ClusterIP against
//! straight to the pod IP, same run, same client.
//!
//! Starts a one-node cluster from the real binaries (rkube-e2e's harness:
//! etcd, the control plane, a kubelet on Docker, rkube-proxy on its own
//! nftables table), one busybox httpd backend serving a small page and a
//! `--megabytes` file, and a Service in front of it. Then, alternating the
//! two targets so neither gets a warmer machine:
//! 1. **requests** — `--requests` sequential HTTP requests (a new TCP
//!    connection each, as a request loop does) from this host, in process;
//! 2. **bulk** — the big file downloaded from this host;
//! 3. **from a pod** — a busybox `wget` loop of `--requests` requests in a
//!    client pod, timed inside the pod.
//!
//! Each line gives the pod-IP figure, the ClusterIP figure and their ratio
//! (ClusterIP / pod IP; the target is ≥ 0.90).

use anyhow::{Context as _, bail};
use clap::Parser;
use rkube_e2e::{Cluster, Options};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Parser)]
#[command(name = "rkube-bench-service-throughput", about = "ClusterIP against pod IP throughput")]
struct Args {
    /// Sequential requests per round.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Size of the bulk file, in MiB.
    #[arg(long, default_value_t = 256)]
    megabytes: usize,
    /// Rounds (each measures both targets).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

const BACKEND: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: backend, labels: {app: backend}}
spec:
  containers:
  - name: httpd
    image: rkube/toolbox:1.0
    imagePullPolicy: Never
    command: [sh, -c, "mkdir -p /www && echo ok > /www/index.html && dd if=/dev/zero of=/www/big bs=1048576 count=MEGABYTES 2>/dev/null && touch /tmp/ready && exec httpd -f -p 8080 -h /www"]
    readinessProbe:
      exec: {command: [cat, /tmp/ready]}
      periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: backend}
spec:
  selector: {app: backend}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers:
  - {name: c, image: 'rkube/toolbox:1.0', imagePullPolicy: Never, command: [sleep, '36000']}
"#;

/// One GET over a new connection; returns the body length.
async fn get(addr: &str, path: &str) -> anyhow::Result<usize> {
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    conn.set_nodelay(true)?;
    conn.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await?;
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0;
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        total += n;
    }
    if total == 0 {
        bail!("{addr}{path}: empty answer");
    }
    Ok(total)
}

async fn requests_per_second(addr: &str, n: usize) -> anyhow::Result<f64> {
    let start = Instant::now();
    for _ in 0..n {
        get(addr, "/").await?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

async fn mib_per_second(addr: &str) -> anyhow::Result<f64> {
    let start = Instant::now();
    let bytes = get(addr, "/big").await?;
    Ok(bytes as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64())
}

/// Requests per second of a busybox wget loop inside the client pod.
fn pod_requests_per_second(cluster: &Cluster, url: &str, n: usize) -> anyhow::Result<f64> {
    let script = format!("time sh -c 'for i in $(seq 1 {n}); do wget -qO- {url} >/dev/null; done'");
    let out = cluster.rkubectl(&["exec", "client", "--", "sh", "-c", &script])?;
    let text = String::from_utf8_lossy(&out.stderr);
    // busybox: "real\t0m 1.23s"
    let real = text.lines().find_map(|l| l.strip_prefix("real")).context("no timing from the pod")?;
    let (m, s) = real.trim().split_once('m').context("timing format")?;
    let secs = m.trim().parse::<f64>()? * 60.0 + s.trim().trim_end_matches('s').trim().parse::<f64>()?;
    Ok(n as f64 / secs)
}

fn line(what: &str, unit: &str, pod: f64, cluster_ip: f64) {
    println!(
        "{what:<28} pod IP {pod:>10.1} {unit}   ClusterIP {cluster_ip:>10.1} {unit}   ratio {:.2}",
        cluster_ip / pod
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The daemons are found next to this executable (or in $RKUBE_BIN_DIR).
    let cluster = Cluster::start_with(Options { nodes: 1, proxy: true, ..Options::default() }).await?;
    cluster.create(&BACKEND.replace("MEGABYTES", &args.megabytes.to_string()))?;
    let ready = |p: &serde_json::Value| {
        p["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
    };
    let backend = cluster.wait_pod("backend", Duration::from_secs(120), ready).await?;
    cluster.wait_pod("client", Duration::from_secs(120), ready).await?;
    let pod_ip = backend["status"]["podIP"].as_str().context("a pod IP")?.to_string();
    let svc: serde_json::Value = serde_json::from_str(&cluster.rkubectl_ok(&["get", "svc", "backend", "-o", "json"])?)?;
    let cluster_ip = svc["spec"]["clusterIP"].as_str().context("a ClusterIP")?.to_string();
    let (direct, service) = (format!("{pod_ip}:8080"), format!("{cluster_ip}:80"));
    // Wait for the rules, and warm both paths.
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&service, "/").await.is_err() {
        if Instant::now() > deadline {
            bail!("the ClusterIP never answered");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    requests_per_second(&direct, 100).await?;
    requests_per_second(&service, 100).await?;
    println!(
        "one node, backend busybox httpd; {} requests per round, {} MiB bulk, {} rounds; best round of each",
        args.requests, args.megabytes, args.rounds
    );
    let (mut rq, mut bulk, mut in_pod) = ([0f64; 2], [0f64; 2], [0f64; 2]);
    for _ in 0..args.rounds {
        rq[0] = rq[0].max(requests_per_second(&direct, args.requests).await?);
        rq[1] = rq[1].max(requests_per_second(&service, args.requests).await?);
        bulk[0] = bulk[0].max(mib_per_second(&direct).await?);
        bulk[1] = bulk[1].max(mib_per_second(&service).await?);
        let n = args.requests / 4;
        in_pod[0] = in_pod[0].max(pod_requests_per_second(&cluster, &format!("http://{direct}/"), n)?);
        in_pod[1] = in_pod[1].max(pod_requests_per_second(&cluster, &format!("http://{service}/"), n)?);
    }
    line("requests from the host", "req/s", rq[0], rq[1]);
    line("bulk download from the host", "MiB/s", bulk[0], bulk[1]);
    line("wget loop inside a pod", "req/s", in_pod[0], in_pod[1]);
    Ok(())
}
