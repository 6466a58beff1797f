//! `describe` output: kubectl's indented key/value layout, aligned with a
//! tab writer. [`describe`] picks the kind's describer; what a describer
//! shows beyond the object itself (events, the pods it owns, its endpoints)
//! arrives in [`Related`], fetched by the command.

mod autoscaling;
mod config;
mod generic;
mod node;
mod pod;
mod policy;
mod service;
mod workloads;

use crate::printers::age;
use crate::printers::tabwriter::TabWriter;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Endpoints, Event, Pod, Toleration};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use rkube_api::ResourceInfo;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What a describer shows besides the object.
#[derive(Debug, Clone, Default)]
pub struct Related {
    /// The object's events (`None`: not asked for, `--show-events=false`).
    pub events: Option<Vec<Event>>,
    /// Pods the object selects or runs (controllers, nodes).
    pub pods: Vec<Pod>,
    /// A service's endpoints.
    pub endpoints: Option<Endpoints>,
    /// A service's endpoint slices (`kubernetes.io/service-name=<name>`).
    pub endpoint_slices: Vec<EndpointSlice>,
    /// A deployment's old replica sets that still want pods.
    pub old_replica_sets: Vec<ReplicaSet>,
    /// A deployment's new replica set (its template is the deployment's).
    pub new_replica_set: Option<ReplicaSet>,
}

/// Text written at indentation levels and aligned at each flush, like
/// kubectl's `PrefixWriter` over a tab writer.
#[derive(Debug)]
pub struct Writer {
    /// None: tabs stay tabs (a `PrefixWriter` straight onto a buffer).
    tab: Option<TabWriter>,
    pending: String,
    out: String,
}

impl Default for Writer {
    fn default() -> Self {
        Writer { tab: Some(TabWriter::describe()), pending: String::new(), out: String::new() }
    }
}

impl Writer {
    /// A writer that leaves tabs as they are, as kubectl's `rollout history
    /// --revision` prints a pod template.
    pub fn unaligned() -> Self {
        Writer { tab: None, pending: String::new(), out: String::new() }
    }

    /// Writes `args` indented by two spaces per `level`.
    pub fn write(&mut self, level: usize, args: std::fmt::Arguments<'_>) {
        for _ in 0..level {
            self.pending.push_str("  ");
        }
        self.pending.write_fmt(args).expect("writing to a String cannot fail");
    }

    /// Aligns what was written since the last flush.
    pub fn flush(&mut self) {
        let text = std::mem::take(&mut self.pending);
        match &mut self.tab {
            Some(tab) => self.out.push_str(&tab.align(&text)),
            None => self.out.push_str(&text),
        }
    }

    /// The aligned text.
    pub fn finish(mut self) -> String {
        self.flush();
        self.out
    }
}

/// Shorthand for [`Writer::write`] with format arguments.
macro_rules! w {
    ($w:expr, $level:expr, $($arg:tt)*) => {
        $w.write($level, format_args!($($arg)*))
    };
}
pub(crate) use w;

/// `Labels:  a=b` with further labels on their own lines, or `<none>`.
pub fn labels(w: &mut Writer, title: &str, labels: Option<&BTreeMap<String, String>>) {
    multiline(w, title, labels, |k, v| format!("{k}={v}"));
}

/// `Annotations:  key: value` lines, or `<none>`.
pub fn annotations(w: &mut Writer, title: &str, annotations: Option<&BTreeMap<String, String>>) {
    const MAX: usize = 140;
    let shown: BTreeMap<String, String> = annotations
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != "kubectl.kubernetes.io/last-applied-configuration")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    multiline(w, title, Some(&shown), |k, v| {
        let line = format!("{k}: {v}");
        if line.chars().count() > MAX { format!("{}...", line.chars().take(MAX).collect::<String>()) } else { line }
    });
}

fn multiline(w: &mut Writer, title: &str, map: Option<&BTreeMap<String, String>>, line: impl Fn(&str, &str) -> String) {
    w!(w, 0, "{title}:\t");
    let map = map.cloned().unwrap_or_default();
    if map.is_empty() {
        w!(w, 0, "<none>\n");
        return;
    }
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            w!(w, 0, "\t");
        }
        w!(w, 0, "{}\n", line(k, v));
    }
}

/// `Tolerations:  node.kubernetes.io/not-ready:NoExecute op=Exists for 300s`.
pub fn tolerations(w: &mut Writer, title: &str, tolerations: Option<&Vec<Toleration>>) {
    w!(w, 0, "{title}:\t");
    let list = tolerations.cloned().unwrap_or_default();
    if list.is_empty() {
        w!(w, 0, "<none>\n");
        return;
    }
    for (i, t) in list.iter().enumerate() {
        if i > 0 {
            w!(w, 0, "\t");
        }
        let key = t.key.clone().unwrap_or_default();
        let value = t.value.clone().unwrap_or_default();
        let effect = t.effect.clone().unwrap_or_default();
        let mut s = key.clone();
        if !value.is_empty() {
            s += &format!("={value}");
        }
        if !effect.is_empty() {
            s += &format!(":{effect}");
        }
        if t.operator.as_deref() == Some("Exists") && value.is_empty() {
            s += if key.is_empty() && effect.is_empty() { "op=Exists" } else { " op=Exists" };
        }
        if let Some(secs) = t.toleration_seconds {
            s += &format!(" for {secs}s");
        }
        w!(w, 0, "{s}\n");
    }
}

/// The `Events:` table, oldest first, or `Events:  <none>`.
pub fn events(w: &mut Writer, events: Option<&Vec<Event>>) {
    let Some(events) = events else { return };
    if events.is_empty() {
        w!(w, 0, "Events:\t<none>\n");
        return;
    }
    w.flush();
    let mut sorted = events.clone();
    sorted.sort_by_key(crate::printers::columns::event_last_seen_seconds);
    w!(w, 0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n");
    w!(w, 1, "----\t------\t----\t----\t-------\n");
    for e in &sorted {
        let first = crate::printers::columns::event_first_seen(e);
        let count = e.series.as_ref().and_then(|s| s.count).or(e.count).unwrap_or(1);
        let interval = if count > 1 {
            let last = match (&e.series, &e.last_timestamp) {
                (Some(s), _) => age::age_micro(s.last_observed_time.as_ref()),
                (None, Some(t)) => age::age(Some(t)),
                (None, None) => first.clone(),
            };
            format!("{last} (x{count} over {first})")
        } else {
            first
        };
        w!(
            w,
            1,
            "{}\t{}\t{}\t{}\t{}\n",
            e.type_.clone().unwrap_or_default(),
            e.reason.clone().unwrap_or_default(),
            interval,
            e.source
                .as_ref()
                .and_then(|s| s.component.clone())
                .filter(|c| !c.is_empty())
                .or(e.reporting_component.clone())
                .unwrap_or_default(),
            e.message.clone().unwrap_or_default().trim()
        );
    }
}

/// `s`, or `<none>` when empty.
pub fn or_none(s: &str) -> &str {
    if s.is_empty() { "<none>" } else { s }
}

fn typed<K: DeserializeOwned>(v: &Value) -> anyhow::Result<K> {
    Ok(serde_json::from_value(v.clone())?)
}

/// kubectl's `DescribePodTemplate` onto a plain buffer (tabs kept), as
/// `rollout history --revision=N` shows a revision.
pub fn pod_template_text(template: &Value) -> anyhow::Result<String> {
    let template: k8s_openapi::api::core::v1::PodTemplateSpec = typed(template)?;
    let mut w = Writer::unaligned();
    pod::pod_template(&mut w, Some(&template));
    Ok(w.finish())
}

/// The description of `object`, a resource of `info`.
pub fn describe(info: &ResourceInfo, object: &Value, related: &Related) -> anyhow::Result<String> {
    Ok(match info.kind {
        "Pod" => pod::describe(&typed(object)?, related),
        "ConfigMap" => config::config_map(&typed(object)?, related),
        "Secret" => config::secret(&typed(object)?, related),
        "Node" => node::describe(&typed(object)?, related),
        "Service" => service::describe(&typed(object)?, related),
        "ReplicationController" => workloads::replication_controller(&typed(object)?, related),
        "ReplicaSet" => workloads::replica_set(&typed(object)?, related),
        "Deployment" => workloads::deployment(&typed(object)?, related),
        "DaemonSet" => workloads::daemon_set(&typed(object)?, related),
        "Job" => workloads::job(&typed(object)?, related),
        "HorizontalPodAutoscaler" => autoscaling::horizontal_pod_autoscaler(&typed(object)?, related),
        "Namespace" => generic::namespace(&typed(object)?),
        "ResourceQuota" => policy::quota(&typed(object)?),
        "LimitRange" => policy::limit_range(&typed(object)?),
        _ => generic::describe(object, related),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiline_labels_continue_under_the_value_column() {
        let mut w = Writer::default();
        w!(w, 0, "Name:\tweb\n");
        let l = BTreeMap::from([("app".to_string(), "web".to_string()), ("tier".to_string(), "front".to_string())]);
        labels(&mut w, "Labels", Some(&l));
        annotations(&mut w, "Annotations", None);
        assert_eq!(
            w.finish(),
            "Name:         web\nLabels:       app=web\n              tier=front\nAnnotations:  <none>\n"
        );
    }

    #[test]
    fn tolerations_read_like_kubectl() {
        let t: Vec<Toleration> = serde_json::from_value(serde_json::json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"operator": "Exists"},
        ]))
        .expect("tolerations");
        let mut w = Writer::default();
        tolerations(&mut w, "Tolerations", Some(&t));
        assert_eq!(
            w.finish(),
            "Tolerations:  node.kubernetes.io/not-ready:NoExecute op=Exists for 300s\n              op=Exists\n"
        );
    }

    #[test]
    fn no_events_reads_none() {
        let mut w = Writer::default();
        events(&mut w, Some(&Vec::new()));
        assert_eq!(w.finish(), "Events:  <none>\n");
    }
}
