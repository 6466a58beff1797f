//! Shared pieces of rkube's benchmarks: running a daemon binary as its own
//! process (so its memory is its own), driving concurrent operations, and
//! percentiles.

use anyhow::Context as _;
use rkube_testkit::{free_port, http_get, wait_for};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Throughput and latency of one measured run.
pub struct Run {
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
}

/// The `p` quantile of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Runs `ops` calls of `op(i)` from `concurrency` tasks; returns throughput and latencies.
/// Runs `ops` calls of `op(i)` from `concurrency` tasks.
pub async fn drive<F, Fut>(ops: usize, concurrency: usize, op: F) -> anyhow::Result<Run>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let op = op.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= ops {
                    break;
                }
                let t = Instant::now();
                op(i).await?;
                lat.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::with_capacity(ops);
    for t in tasks {
        all.extend(t.await??);
    }
    let took = start.elapsed();
    all.sort();
    Ok(Run { ops_per_sec: ops as f64 / took.as_secs_f64(), p50: percentile(&all, 0.5), p99: percentile(&all, 0.99) })
}

/// How many nodes report Ready=True.
pub async fn ready_nodes(client: &rkube_client::Client) -> usize {
    let nodes = rkube_api::resource::lookup("nodes").expect("nodes are in the resource table");
    let Ok(list) = client.list(nodes, "", &rkube_client::ListParams::default()).await else { return 0 };
    list.items
        .iter()
        .filter(|o| {
            serde_json::from_slice::<serde_json::Value>(&o.json).ok().is_some_and(|v| {
                v["status"]["conditions"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
            })
        })
        .count()
}

/// Resident memory of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS")
}

/// A `/proc/<pid>/status` figure in KiB (`VmRSS`, `RssAnon`, `RssFile`).
pub fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// `RSS 61.4 MiB (anon 40.1, file 21.3)`: the resident set and how much of
/// it is the heap and stacks (anonymous) and how much mapped files (code).
pub fn rss_summary(pid: u32) -> anyhow::Result<String> {
    let mib = |field| status_kib(pid, field).map(|k| k as f64 / 1024.0);
    Ok(format!("RSS {:.1} MiB (anon {:.1}, file {:.1})", mib("VmRSS")?, mib("RssAnon")?, mib("RssFile")?))
}

/// A daemon running as a child process, killed on drop.
pub struct Daemon {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:<port>` of the port it was given.
    pub url: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rkube-apiserver` from `bin_dir` on `etcd_url`, plain HTTP (a benchmark's
/// own sandbox), ready to answer.
pub async fn start_apiserver(bin_dir: &Path, etcd_url: &str) -> anyhow::Result<Daemon> {
    start_daemon(&bin_dir.join("rkube-apiserver"), &["--etcd-servers", etcd_url, "--plain-http"], "--port", "/readyz")
        .await
}

/// Starts `bin` with `args` plus `<port_flag> <free port>`, and waits until
/// `<url><ready_path>` answers 200.
pub async fn start_daemon(bin: &Path, args: &[&str], port_flag: &str, ready_path: &str) -> anyhow::Result<Daemon> {
    let port = free_port();
    let port_arg = if port_flag.contains("address") { format!("127.0.0.1:{port}") } else { port.to_string() };
    let child = Command::new(bin)
        .args(args)
        .args([port_flag, &port_arg])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| {
            format!("starting {} (build it with cargo build --release --workspace --bins)", bin.display())
        })?;
    let url = format!("http://127.0.0.1:{port}");
    let ready = format!("{url}{ready_path}");
    wait_for(Duration::from_secs(20), || {
        let ready = ready.clone();
        async move { http_get(&ready).await.is_ok_and(|(c, _)| c == 200) }
    })
    .await
    .with_context(|| format!("{} did not become ready", bin.display()))?;
    Ok(Daemon { child, url })
}

/// Starts `rkube-controller-manager` from `bin_dir` against `server`, every
/// controller on, without leader election, node IPAM over 10.0.0.0/8 (room
/// for thousands of hollow nodes).
pub async fn start_controller_manager(bin_dir: &Path, server: &str) -> anyhow::Result<Daemon> {
    let args = ["--server", server, "--cluster-cidr", "10.0.0.0/8", "--leader-elect=false"];
    start_daemon(&bin_dir.join("rkube-controller-manager"), &args, "--healthz-bind-address", "/healthz").await
}
