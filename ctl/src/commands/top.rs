//! `top nodes` and `top pods`: CPU and memory use from the
//! `metrics.k8s.io` API (NodeMetrics, PodMetrics, which the apiserver
//! computes from the kubelets' stats), in kubectl's columns: CPU in
//! millicores, memory (the working set) in MiB, nodes also as a share of
//! their allocatable resources.

use super::list;
use crate::cli::{TopNodesArgs, TopPodsArgs};
use crate::printers::tabwriter::TabWriter;
use crate::session::Session;
use rkube_api::quantity::{self, Quantity};
use rkube_api::resource::lookup;
use rkube_api::{ApiError, Reason};
use serde_json::Value;
use std::collections::BTreeMap;

/// CPU and memory use of one thing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Millicores (rounded up, as kubectl's `MilliValue`).
    pub cpu_millis: u64,
    /// Working set bytes.
    pub memory_bytes: u64,
}

impl Usage {
    /// The usage in a metrics `usage` (`{"cpu":"12m","memory":"5Mi"}`).
    pub fn of(usage: &Value) -> Usage {
        Usage::sum(std::iter::once(usage))
    }

    /// The total of several `usage`s (a pod's containers).
    pub fn sum<'a>(usages: impl IntoIterator<Item = &'a Value>) -> Usage {
        let (mut cpu, mut memory) = (Quantity::default(), Quantity::default());
        for u in usages {
            let q = |r: &str| u[r].as_str().and_then(|q| quantity::parse(q).ok()).unwrap_or_default();
            cpu = cpu.checked_add(q("cpu")).unwrap_or(cpu);
            memory = memory.checked_add(q("memory")).unwrap_or(memory);
        }
        Usage {
            cpu_millis: u64::try_from(cpu.millis()).unwrap_or(0),
            memory_bytes: u64::try_from(memory.value()).unwrap_or(0),
        }
    }

    /// `250m`.
    pub fn cpu(&self) -> String {
        format!("{}m", self.cpu_millis)
    }

    /// `64Mi`.
    pub fn memory(&self) -> String {
        format!("{}Mi", self.memory_bytes / (1024 * 1024))
    }
}

/// `12%` of `total` (`<unknown>` without a total).
fn percent(used: u64, total: i128) -> String {
    if total <= 0 {
        return "<unknown>".into();
    }
    format!("{}%", i128::from(used) * 100 / total)
}

/// `metadata.<field>` ("" when absent).
fn meta<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_str).unwrap_or_default()
}

/// One object's metrics: none (rather than an error) when it has none yet.
async fn one(s: &Session, resource: &str, namespace: &str, name: &str) -> anyhow::Result<Vec<Value>> {
    match s.client.metrics(resource, namespace, name, "").await {
        Err(ApiError { reason: Reason::NotFound, .. }) => Ok(Vec::new()),
        other => Ok(other?),
    }
}

/// Runs `top nodes`.
pub async fn nodes(s: &Session, a: &TopNodesArgs) -> anyhow::Result<()> {
    let info = lookup("nodes")?;
    let selector = a.selector.as_deref().unwrap_or_default();
    let (nodes, metrics): (Vec<Value>, Vec<Value>) = match &a.name {
        Some(name) => {
            let node = super::json_of!(s.client.get(info, "", name).await?)?;
            (vec![node], one(s, "nodes", "", name).await?)
        }
        None => {
            let nodes = list(s, info, "", a.selector.as_deref(), None).await?;
            (nodes, s.client.metrics("nodes", "", "", selector).await?)
        }
    };
    if nodes.is_empty() {
        eprintln!("No resources found");
        return Ok(());
    }
    let metrics: BTreeMap<&str, &Value> = metrics.iter().map(|m| (meta(m, "name"), m)).collect();
    let mut text = String::new();
    if !a.no_headers {
        text.push_str("NAME\tCPU(cores)\tCPU(%)\tMEMORY(bytes)\tMEMORY(%)\n");
    }
    for node in &nodes {
        let name = meta(node, "name");
        let allocatable = |r: &str| {
            node.pointer(&format!("/status/allocatable/{r}"))
                .and_then(Value::as_str)
                .and_then(|q| quantity::parse(q).ok())
        };
        match metrics.get(name) {
            Some(m) => {
                let u = Usage::of(&m["usage"]);
                let cpu_total = allocatable("cpu").map_or(0, |q| q.millis());
                let memory_total = allocatable("memory").map_or(0, |q| q.value());
                text.push_str(&format!(
                    "{name}\t{}\t{}\t{}\t{}\n",
                    u.cpu(),
                    percent(u.cpu_millis, cpu_total),
                    u.memory(),
                    percent(u.memory_bytes, memory_total)
                ));
            }
            None => text.push_str(&format!("{name}\t<unknown>\t<unknown>\t<unknown>\t<unknown>\n")),
        }
    }
    super::print(&TabWriter::table().align(&text))
}

/// Runs `top pods`.
pub async fn pods(s: &Session, a: &TopPodsArgs) -> anyhow::Result<()> {
    if a.name.is_some() && a.all_namespaces {
        return Err(crate::report::usage("a resource cannot be retrieved by name across all namespaces"));
    }
    let info = lookup("pods")?;
    let namespace = if a.all_namespaces { String::new() } else { s.namespace.clone() };
    let selector = a.selector.as_deref().unwrap_or_default();
    let metrics = match &a.name {
        Some(name) => {
            let metrics = one(s, "pods", &namespace, name).await?;
            if metrics.is_empty() {
                // `pods "x" not found` when there is no such pod.
                s.client.get(info, &namespace, name).await?;
                return Err(anyhow::anyhow!("Metrics not available for pod {namespace}/{name}"));
            }
            metrics
        }
        None => s.client.pod_metrics(&namespace, selector).await?,
    };
    if metrics.is_empty() {
        if list(s, info, &namespace, a.selector.as_deref(), None).await?.is_empty() {
            match a.all_namespaces {
                true => eprintln!("No resources found"),
                false => eprintln!("No resources found in {namespace} namespace."),
            }
            return Ok(());
        }
        let scope = if a.all_namespaces { String::new() } else { format!(" in namespace {namespace}") };
        return Err(anyhow::anyhow!("Metrics not available for pods{scope}"));
    }
    let mut text = String::new();
    if !a.no_headers {
        let ns = if a.all_namespaces { "NAMESPACE\t" } else { "" };
        match a.containers {
            true => text.push_str(&format!("{ns}POD\tNAME\tCPU(cores)\tMEMORY(bytes)\n")),
            false => text.push_str(&format!("{ns}NAME\tCPU(cores)\tMEMORY(bytes)\n")),
        }
    }
    for m in &metrics {
        let (ns, name) = (meta(m, "namespace"), meta(m, "name"));
        let prefix = if a.all_namespaces { format!("{ns}\t") } else { String::new() };
        let containers = m["containers"].as_array().map(Vec::as_slice).unwrap_or_default();
        if a.containers {
            for c in containers {
                let u = Usage::of(&c["usage"]);
                let container = c["name"].as_str().unwrap_or_default();
                text.push_str(&format!("{prefix}{name}\t{container}\t{}\t{}\n", u.cpu(), u.memory()));
            }
        } else {
            let u = Usage::sum(containers.iter().map(|c| &c["usage"]));
            text.push_str(&format!("{prefix}{name}\t{}\t{}\n", u.cpu(), u.memory()));
        }
    }
    super::print(&TabWriter::table().align(&text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_is_shown_in_millicores_and_mebibytes() {
        let u = Usage::of(&json!({"cpu": "251900000n", "memory": "68359Ki"}));
        assert_eq!((u.cpu(), u.memory()), ("252m".to_string(), "66Mi".to_string()), "millicores round up");
        assert_eq!(Usage::of(&json!({})).cpu(), "0m");
        let pod = [json!({"cpu": "12m", "memory": "5Mi"}), json!({"cpu": "1234567n", "memory": "1Mi"})];
        assert_eq!(Usage::sum(&pod), Usage { cpu_millis: 14, memory_bytes: 6 << 20 });
    }

    #[test]
    fn shares_are_whole_percent_of_allocatable() {
        assert_eq!(percent(250, 2000), "12%");
        assert_eq!(percent(1, 0), "<unknown>");
    }
}
