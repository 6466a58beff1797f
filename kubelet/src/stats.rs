//! The node's resource usage summary, shaped like the kubelet's
//! `/stats/summary`: the node's CPU and memory from `/proc/stat` and
//! `/proc/meminfo`, each running container's from the runtime, and each
//! pod's as the sum of its containers.
//!
//! [`Summarizer::summary`] keeps its answer for [`CACHE_FOR`], so `top`
//! polling many times a second costs one round of runtime calls.

use crate::runtime::{ContainerKind, ContainerStats, Runtime};
use bytes::Bytes;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// How long a summary is served again before it is recomputed.
pub const CACHE_FOR: Duration = Duration::from_secs(1);

/// Nanoseconds per clock tick of `/proc/stat` (USER_HZ is 100 on Linux).
const NANOS_PER_TICK: u64 = 10_000_000;

/// The shortest interval the node's CPU rate is measured over.
const MIN_CPU_INTERVAL: Duration = Duration::from_millis(100);

/// CPU time the node has spent busy, in nanoseconds, from `/proc/stat`
/// (user + nice + system + irq + softirq + steal; guest time is in user).
pub fn node_cpu_nanos(proc_stat: &str) -> Option<u64> {
    let line = proc_stat.lines().find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let fields: Vec<u64> = line.split_whitespace().skip(1).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| fields.get(i)).sum();
    Some(busy * NANOS_PER_TICK)
}

/// The node's memory, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeMemory {
    /// `MemTotal`.
    pub total: u64,
    /// `MemFree`.
    pub free: u64,
    /// `MemAvailable`.
    pub available: u64,
}

/// Parses `/proc/meminfo` (values in kB).
pub fn node_memory(meminfo: &str) -> NodeMemory {
    let field = |name: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    NodeMemory { total: field("MemTotal"), free: field("MemFree"), available: field("MemAvailable") }
}

/// The rate between two CPU-time samples, in billionths of a core.
pub fn nano_cores(before: (Instant, u64), after: (Instant, u64)) -> u64 {
    let wall = after.0.saturating_duration_since(before.0).as_nanos();
    if wall == 0 {
        return 0;
    }
    let used = u128::from(after.1.saturating_sub(before.1));
    u64::try_from(used * 1_000_000_000 / wall).unwrap_or(u64::MAX)
}

/// `usageNanoCores` is left out while the rate is unknown (a container's
/// first sample), as the kubelet's summary API does: a 0 would read as idle.
fn cpu_json(time: &str, s: &ContainerStats) -> Value {
    let mut cpu = json!({"time": time, "usageCoreNanoSeconds": s.cpu_usage_core_nanos});
    if let Some(rate) = s.cpu_usage_nano_cores {
        cpu["usageNanoCores"] = json!(rate);
    }
    cpu
}

fn memory_json(time: &str, s: &ContainerStats) -> Value {
    let mut m = json!({
        "time": time,
        "usageBytes": s.memory_usage_bytes,
        "workingSetBytes": s.memory_working_set_bytes,
    });
    if let Some(limit) = s.memory_limit_bytes {
        m["availableBytes"] = json!(limit.saturating_sub(s.memory_working_set_bytes));
    }
    m
}

/// One container's figures in a summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUsage {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The pod's uid.
    pub uid: String,
    /// The container's name.
    pub name: String,
    /// What it uses.
    pub stats: ContainerStats,
}

/// Builds the summary JSON: the node, then one entry per pod (sorted by
/// namespace and name) whose figures are the sums of its containers'.
/// Container memory limits of `node_memory.total` or more count as none.
pub fn summary(
    node: &str,
    now: Timestamp,
    node_cpu: (u64, u64),
    memory: NodeMemory,
    usage: &[ContainerUsage],
) -> Value {
    let time = now.to_string();
    let mut pods: BTreeMap<(&str, &str, &str), Vec<&ContainerUsage>> = BTreeMap::new();
    for c in usage {
        pods.entry((&c.namespace, &c.pod, &c.uid)).or_default().push(c);
    }
    let pods: Vec<Value> = pods
        .into_iter()
        .map(|((namespace, name, uid), containers)| {
            let mut sum = ContainerStats { cpu_usage_nano_cores: Some(0), ..Default::default() };
            let mut limited = true;
            for c in &containers {
                sum.cpu_usage_core_nanos += c.stats.cpu_usage_core_nanos;
                // The pod's rate is known once every container's is.
                sum.cpu_usage_nano_cores =
                    sum.cpu_usage_nano_cores.zip(c.stats.cpu_usage_nano_cores).map(|(a, b)| a + b);
                sum.memory_usage_bytes += c.stats.memory_usage_bytes;
                sum.memory_working_set_bytes += c.stats.memory_working_set_bytes;
                match c.stats.memory_limit_bytes.filter(|l| memory.total == 0 || *l < memory.total) {
                    Some(l) => sum.memory_limit_bytes = Some(sum.memory_limit_bytes.unwrap_or(0) + l),
                    None => limited = false,
                }
            }
            if !limited {
                sum.memory_limit_bytes = None;
            }
            let containers: Vec<Value> = containers
                .iter()
                .map(|c| {
                    let mut stats = c.stats.clone();
                    stats.memory_limit_bytes =
                        stats.memory_limit_bytes.filter(|l| memory.total == 0 || *l < memory.total);
                    let t = c.stats.time.map_or_else(|| time.clone(), |t| t.to_string());
                    json!({"name": c.name, "cpu": cpu_json(&t, &stats), "memory": memory_json(&t, &stats)})
                })
                .collect();
            json!({
                "podRef": {"name": name, "namespace": namespace, "uid": uid},
                "cpu": cpu_json(&time, &sum),
                "memory": memory_json(&time, &sum),
                "containers": containers,
            })
        })
        .collect();
    json!({
        "node": {
            "nodeName": node,
            "cpu": {"time": time, "usageNanoCores": node_cpu.0, "usageCoreNanoSeconds": node_cpu.1},
            "memory": {
                "time": time,
                "usageBytes": memory.total.saturating_sub(memory.free),
                "workingSetBytes": memory.total.saturating_sub(memory.available),
                "availableBytes": memory.available,
            },
        },
        "pods": pods,
    })
}

#[derive(Debug, Default)]
struct Cache {
    summary: Option<(Instant, Bytes)>,
    cpu: Option<(Instant, u64)>,
}

/// Computes (and caches) the summary of one node.
#[derive(Debug)]
pub struct Summarizer {
    node: String,
    cache: Mutex<Cache>,
}

impl Summarizer {
    /// A summarizer for node `node`.
    pub fn new(node: &str) -> Summarizer {
        Summarizer { node: node.to_string(), cache: Mutex::new(Cache::default()) }
    }

    /// The summary JSON, at most [`CACHE_FOR`] old. Callers that come while
    /// it is being computed wait for that one.
    pub async fn summary<R: Runtime>(&self, runtime: &R) -> crate::runtime::Result<Bytes> {
        let mut cache = self.cache.lock().await;
        if let Some((at, json)) = &cache.summary
            && at.elapsed() < CACHE_FOR
        {
            return Ok(json.clone());
        }
        let cpu_before = match cache.cpu {
            Some(sample) => sample,
            None => (Instant::now(), read_node_cpu().await),
        };
        let running: Vec<_> = runtime
            .list_containers()
            .await?
            .into_iter()
            .filter(|c| c.is_running() && c.meta.kind != ContainerKind::Sandbox)
            .collect();
        let measured = futures::future::join_all(running.iter().map(|c| runtime.container_stats(&c.id))).await;
        let usage: Vec<ContainerUsage> = running
            .into_iter()
            .zip(measured)
            // A container that stopped in between has no figures.
            .filter_map(|(c, stats)| {
                Some(ContainerUsage {
                    namespace: c.meta.pod_namespace,
                    pod: c.meta.pod_name,
                    uid: c.meta.pod_uid,
                    name: c.meta.name,
                    stats: stats.ok()?,
                })
            })
            .collect();
        if cpu_before.0.elapsed() < MIN_CPU_INTERVAL {
            tokio::time::sleep(MIN_CPU_INTERVAL - cpu_before.0.elapsed()).await;
        }
        let cpu_now = (Instant::now(), read_node_cpu().await);
        let memory = node_memory(&tokio::fs::read_to_string("/proc/meminfo").await.unwrap_or_default());
        let value = summary(&self.node, Timestamp::now(), (nano_cores(cpu_before, cpu_now), cpu_now.1), memory, &usage);
        let json = Bytes::from(serde_json::to_vec(&value).expect("a summary always serializes"));
        cache.cpu = Some(cpu_now);
        cache.summary = Some((Instant::now(), json.clone()));
        Ok(json)
    }
}

async fn read_node_cpu() -> u64 {
    node_cpu_nanos(&tokio::fs::read_to_string("/proc/stat").await.unwrap_or_default()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_cpu_counts_busy_ticks_as_nanoseconds() {
        let stat = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\nintr 1\n";
        assert_eq!(node_cpu_nanos(stat), Some((100 + 5 + 50 + 3 + 2 + 1) * NANOS_PER_TICK));
        assert_eq!(node_cpu_nanos("intr 1\n"), None);
    }

    #[test]
    fn meminfo_values_are_kilobytes() {
        let info = "MemTotal:       2048 kB\nMemFree:         512 kB\nMemAvailable:   1024 kB\n";
        assert_eq!(node_memory(info), NodeMemory { total: 2 << 20, free: 512 << 10, available: 1 << 20 });
    }

    #[test]
    fn cpu_rate_is_cpu_time_over_wall_time() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(nano_cores((t0, 0), (t1, 250_000_000)), 500_000_000, "half a core");
        assert_eq!(nano_cores((t0, 10), (t0, 20)), 0, "no time passed");
    }

    fn usage(pod: &str, name: &str, memory: u64, cores: u64) -> ContainerUsage {
        ContainerUsage {
            namespace: "default".into(),
            pod: pod.into(),
            uid: format!("uid-{pod}"),
            name: name.into(),
            stats: ContainerStats {
                time: None,
                cpu_usage_core_nanos: 1000,
                cpu_usage_nano_cores: Some(cores),
                memory_usage_bytes: memory + 100,
                memory_working_set_bytes: memory,
                memory_limit_bytes: Some(1 << 40),
            },
        }
    }

    #[test]
    fn pods_sum_their_containers() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let memory = NodeMemory { total: 1 << 30, free: 1 << 28, available: 1 << 29 };
        let all = [usage("web", "a", 10, 1), usage("web", "b", 20, 2), usage("db", "c", 5, 3)];
        let s = summary("n1", now, (7, 9), memory, &all);
        assert_eq!(s["node"]["nodeName"], "n1");
        assert_eq!(s["node"]["cpu"]["usageNanoCores"], 7);
        assert_eq!(s["node"]["memory"]["workingSetBytes"], (1u64 << 30) - (1 << 29));
        let pods = s["pods"].as_array().unwrap();
        assert_eq!(pods.len(), 2);
        let web = &pods[1];
        assert_eq!(web["podRef"], json!({"name": "web", "namespace": "default", "uid": "uid-web"}));
        assert_eq!(web["memory"]["workingSetBytes"], 30);
        assert_eq!(web["memory"]["usageBytes"], 230);
        assert_eq!(web["cpu"]["usageNanoCores"], 3);
        assert_eq!(web["cpu"]["usageCoreNanoSeconds"], 2000);
        assert!(web["memory"].get("availableBytes").is_none(), "a limit above the node's memory is no limit");
        let mut unmeasured = usage("new", "a", 1, 0);
        unmeasured.stats.cpu_usage_nano_cores = None;
        let s = summary("n1", now, (7, 9), memory, &[unmeasured, usage("new", "b", 1, 4)]);
        let new = &s["pods"][0];
        assert!(new["cpu"].get("usageNanoCores").is_none(), "no rate while a container has none: {new}");
        assert!(new["containers"][0]["cpu"].get("usageNanoCores").is_none());
        assert_eq!(new["containers"][1]["cpu"]["usageNanoCores"], 4);
        assert_eq!(web["containers"][1]["name"], "b");
        assert_eq!(web["containers"][1]["memory"]["workingSetBytes"], 20);
    }
}
