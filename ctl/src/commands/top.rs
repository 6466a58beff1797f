//! `top nodes` and `top pods`: CPU and memory use from the kubelets' stats
//! summaries (relayed by the apiserver), in kubectl's columns: CPU in
//! millicores, memory (the working set) in MiB, nodes also as a share of
//! their allocatable resources.

use super::list;
use crate::cli::{TopNodesArgs, TopPodsArgs};
use crate::printers::tabwriter::TabWriter;
use crate::session::Session;
use rkube_api::quantity;
use rkube_api::resource::lookup;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// CPU and memory use of one thing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Millicores.
    pub cpu_millis: u64,
    /// Working set bytes.
    pub memory_bytes: u64,
}

impl Usage {
    /// The usage in a summary entry's `cpu` and `memory`.
    pub fn of(entry: &Value) -> Usage {
        Usage {
            cpu_millis: entry["cpu"]["usageNanoCores"].as_u64().unwrap_or(0) / 1_000_000,
            memory_bytes: entry["memory"]["workingSetBytes"].as_u64().unwrap_or(0),
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

/// Each node's summary (or why there is none), fetched at once.
async fn summaries(s: &Session, nodes: &BTreeSet<String>) -> BTreeMap<String, Result<Value, String>> {
    let calls = nodes.iter().map(|n| async move { (n.clone(), s.client.node_stats(n).await.map_err(|e| e.message)) });
    futures::future::join_all(calls).await.into_iter().collect()
}

/// Runs `top nodes`.
pub async fn nodes(s: &Session, a: &TopNodesArgs) -> anyhow::Result<()> {
    let info = lookup("nodes")?;
    let nodes: Vec<Value> = match &a.name {
        Some(name) => vec![super::json_of!(s.client.get(info, "", name).await?)?],
        None => list(s, info, "", a.selector.as_deref(), None).await?,
    };
    if nodes.is_empty() {
        eprintln!("No resources found");
        return Ok(());
    }
    let names: BTreeSet<String> =
        nodes.iter().filter_map(|n| n.pointer("/metadata/name")?.as_str()).map(str::to_string).collect();
    let stats = summaries(s, &names).await;
    let mut text = String::new();
    if !a.no_headers {
        text.push_str("NAME\tCPU(cores)\tCPU(%)\tMEMORY(bytes)\tMEMORY(%)\n");
    }
    for node in &nodes {
        let name = node.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        let allocatable = |r: &str| {
            node.pointer(&format!("/status/allocatable/{r}"))
                .and_then(Value::as_str)
                .and_then(|q| quantity::parse(q).ok())
        };
        match stats.get(name) {
            Some(Ok(summary)) => {
                let u = Usage::of(&summary["node"]);
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
            _ => text.push_str(&format!("{name}\t<unknown>\t<unknown>\t<unknown>\t<unknown>\n")),
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
    let pods: Vec<Value> = match &a.name {
        Some(name) => vec![super::json_of!(s.client.get(info, &namespace, name).await?)?],
        None => list(s, info, &namespace, a.selector.as_deref(), None).await?,
    };
    if pods.is_empty() {
        match a.all_namespaces {
            true => eprintln!("No resources found"),
            false => eprintln!("No resources found in {namespace} namespace."),
        }
        return Ok(());
    }
    let nodes: BTreeSet<String> = pods
        .iter()
        .filter_map(|p| p.pointer("/spec/nodeName")?.as_str())
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect();
    let stats = summaries(s, &nodes).await;
    let entries: Vec<&Value> = stats
        .values()
        .filter_map(|r| r.as_ref().ok())
        .flat_map(|summary| summary["pods"].as_array().into_iter().flatten())
        .collect();
    let mut rows: Vec<(String, String, Value)> = Vec::new();
    for pod in &pods {
        let field = |p: &str| pod.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
        let (ns, name, uid) = (field("/metadata/namespace"), field("/metadata/name"), field("/metadata/uid"));
        let found = entries.iter().find(|e| {
            e["podRef"]["namespace"] == ns.as_str()
                && e["podRef"]["name"] == name.as_str()
                && (e["podRef"]["uid"] == uid.as_str() || uid.is_empty())
        });
        match found {
            Some(e) => rows.push((ns, name, (*e).clone())),
            None if a.name.is_some() => {
                return Err(anyhow::anyhow!("Metrics not available for pod {ns}/{name}"));
            }
            None => {}
        }
    }
    if rows.is_empty() {
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
    for (ns, name, entry) in &rows {
        let prefix = if a.all_namespaces { format!("{ns}\t") } else { String::new() };
        if a.containers {
            for c in entry["containers"].as_array().into_iter().flatten() {
                let u = Usage::of(c);
                let container = c["name"].as_str().unwrap_or_default();
                text.push_str(&format!("{prefix}{name}\t{container}\t{}\t{}\n", u.cpu(), u.memory()));
            }
        } else {
            let u = Usage::of(entry);
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
        let u = Usage::of(
            &json!({"cpu": {"usageNanoCores": 251_900_000u64}, "memory": {"workingSetBytes": 70_000_000u64}}),
        );
        assert_eq!((u.cpu(), u.memory()), ("251m".to_string(), "66Mi".to_string()));
        assert_eq!(Usage::of(&json!({})).cpu(), "0m");
    }

    #[test]
    fn shares_are_whole_percent_of_allocatable() {
        assert_eq!(percent(250, 2000), "12%");
        assert_eq!(percent(1, 0), "<unknown>");
    }
}
