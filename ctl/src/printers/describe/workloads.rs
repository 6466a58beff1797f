//! `describe` of controllers: replication controllers, replica sets,
//! deployments, daemon sets and jobs, each with its pod template.

use super::pod::pod_template;
use super::{Related, Writer, annotations, events, labels, w};
use crate::printers::age;
use crate::printers::columns::format_label_selector;
use crate::printers::table::format_labels;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// `2 Running / 0 Waiting / 0 Succeeded / 0 Failed` over the controller's pods.
fn pods_status(pods: &[Pod]) -> String {
    let count = |phase: &str| {
        pods.iter()
            .filter(|p| {
                p.status.as_ref().and_then(|s| s.phase.as_deref()).filter(|p| !p.is_empty()).unwrap_or("Pending")
                    == phase
            })
            .count()
    };
    format!(
        "{} Running / {} Waiting / {} Succeeded / {} Failed",
        count("Running"),
        count("Pending"),
        count("Succeeded"),
        count("Failed")
    )
}

fn header(w: &mut Writer, meta: &ObjectMeta) {
    w!(w, 0, "Name:\t{}\n", meta.name.clone().unwrap_or_default());
    w!(w, 0, "Namespace:\t{}\n", meta.namespace.clone().unwrap_or_default());
}

fn controlled_by(w: &mut Writer, meta: &ObjectMeta) {
    if let Some(owner) = meta.owner_references.iter().flatten().find(|o| o.controller == Some(true)) {
        w!(w, 0, "Controlled By:\t{}/{}\n", owner.kind, owner.name);
    }
}

fn conditions(w: &mut Writer, list: &[(String, String, String)]) {
    if list.is_empty() {
        return;
    }
    w!(w, 0, "Conditions:\n  Type\tStatus\tReason\n");
    w!(w, 1, "----\t------\t------\n");
    for (t, s, r) in list {
        w!(w, 1, "{t} \t{s}\t{r}\n");
    }
}

/// The description of a replication controller.
pub fn replication_controller(rc: &ReplicationController, related: &Related) -> String {
    let mut w = Writer::default();
    let spec = rc.spec.clone().unwrap_or_default();
    let status = rc.status.clone().unwrap_or_default();
    header(&mut w, &rc.metadata);
    w!(w, 0, "Selector:\t{}\n", format_labels(&spec.selector.clone().unwrap_or_default()));
    labels(&mut w, "Labels", rc.metadata.labels.as_ref());
    annotations(&mut w, "Annotations", rc.metadata.annotations.as_ref());
    w!(w, 0, "Replicas:\t{} current / {} desired\n", status.replicas, spec.replicas.unwrap_or(1));
    w!(w, 0, "Pods Status:\t{}\n", pods_status(&related.pods));
    pod_template(&mut w, spec.template.as_ref());
    let conds: Vec<_> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone().unwrap_or_default()))
        .collect();
    conditions(&mut w, &conds);
    events(&mut w, related.events.as_ref());
    w.finish()
}

/// The description of a replica set.
pub fn replica_set(rs: &ReplicaSet, related: &Related) -> String {
    let mut w = Writer::default();
    let spec = rs.spec.clone().unwrap_or_default();
    let status = rs.status.clone().unwrap_or_default();
    header(&mut w, &rs.metadata);
    w!(w, 0, "Selector:\t{}\n", format_label_selector(&spec.selector));
    labels(&mut w, "Labels", rs.metadata.labels.as_ref());
    annotations(&mut w, "Annotations", rs.metadata.annotations.as_ref());
    controlled_by(&mut w, &rs.metadata);
    w!(w, 0, "Replicas:\t{} current / {} desired\n", status.replicas, spec.replicas.unwrap_or(1));
    w!(w, 0, "Pods Status:\t{}\n", pods_status(&related.pods));
    pod_template(&mut w, spec.template.as_ref());
    let conds: Vec<_> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone().unwrap_or_default()))
        .collect();
    conditions(&mut w, &conds);
    events(&mut w, related.events.as_ref());
    w.finish()
}

fn int_or_string(v: Option<&IntOrString>, default: &str) -> String {
    match v {
        Some(IntOrString::Int(i)) => i.to_string(),
        Some(IntOrString::String(s)) => s.clone(),
        None => default.to_string(),
    }
}

fn replica_sets_text(list: &[&ReplicaSet]) -> String {
    if list.is_empty() {
        return "<none>".into();
    }
    list.iter()
        .map(|rs| {
            format!(
                "{} ({}/{} replicas created)",
                rs.metadata.name.clone().unwrap_or_default(),
                rs.status.as_ref().map_or(0, |s| s.replicas),
                rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The description of a deployment, with its old and new replica sets.
pub fn deployment(d: &Deployment, related: &Related) -> String {
    let mut w = Writer::default();
    let spec = d.spec.clone().unwrap_or_default();
    let status = d.status.clone().unwrap_or_default();
    header(&mut w, &d.metadata);
    if let Some(t) = &d.metadata.creation_timestamp {
        w!(w, 0, "CreationTimestamp:\t{}\n", age::rfc1123(t));
    }
    labels(&mut w, "Labels", d.metadata.labels.as_ref());
    annotations(&mut w, "Annotations", d.metadata.annotations.as_ref());
    w!(w, 0, "Selector:\t{}\n", format_label_selector(&spec.selector));
    w!(
        w,
        0,
        "Replicas:\t{} desired | {} updated | {} total | {} available | {} unavailable\n",
        spec.replicas.unwrap_or(1),
        status.updated_replicas.unwrap_or(0),
        status.replicas.unwrap_or(0),
        status.available_replicas.unwrap_or(0),
        status.unavailable_replicas.unwrap_or(0)
    );
    let strategy = spec.strategy.clone().unwrap_or_default();
    w!(w, 0, "StrategyType:\t{}\n", strategy.type_.clone().unwrap_or_default());
    w!(w, 0, "MinReadySeconds:\t{}\n", spec.min_ready_seconds.unwrap_or(0));
    if let Some(ru) = &strategy.rolling_update {
        w!(
            w,
            0,
            "RollingUpdateStrategy:\t{} max unavailable, {} max surge\n",
            int_or_string(ru.max_unavailable.as_ref(), "25%"),
            int_or_string(ru.max_surge.as_ref(), "25%")
        );
    }
    pod_template(&mut w, Some(&spec.template));
    let conds: Vec<_> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone().unwrap_or_default()))
        .collect();
    conditions(&mut w, &conds);
    if !related.old_replica_sets.is_empty() || related.new_replica_set.is_some() {
        let old: Vec<&ReplicaSet> = related.old_replica_sets.iter().collect();
        let new: Vec<&ReplicaSet> = related.new_replica_set.iter().collect();
        w!(w, 0, "OldReplicaSets:\t{}\n", replica_sets_text(&old));
        w!(w, 0, "NewReplicaSet:\t{}\n", replica_sets_text(&new));
    }
    events(&mut w, related.events.as_ref());
    w.finish()
}

/// The description of a daemon set.
pub fn daemon_set(ds: &DaemonSet, related: &Related) -> String {
    let mut w = Writer::default();
    let spec = ds.spec.clone().unwrap_or_default();
    let status = ds.status.clone().unwrap_or_default();
    w!(w, 0, "Name:\t{}\n", ds.metadata.name.clone().unwrap_or_default());
    w!(w, 0, "Namespace:\t{}\n", ds.metadata.namespace.clone().unwrap_or_default());
    w!(w, 0, "Selector:\t{}\n", format_label_selector(&spec.selector));
    let node_selector = spec.template.spec.as_ref().and_then(|s| s.node_selector.clone()).unwrap_or_default();
    w!(w, 0, "Node-Selector:\t{}\n", format_labels(&node_selector));
    labels(&mut w, "Labels", ds.metadata.labels.as_ref());
    annotations(&mut w, "Annotations", ds.metadata.annotations.as_ref());
    w!(w, 0, "Desired Number of Nodes Scheduled: {}\n", status.desired_number_scheduled);
    w!(w, 0, "Current Number of Nodes Scheduled: {}\n", status.current_number_scheduled);
    w!(w, 0, "Number of Nodes Scheduled with Up-to-date Pods: {}\n", status.updated_number_scheduled.unwrap_or(0));
    w!(w, 0, "Number of Nodes Scheduled with Available Pods: {}\n", status.number_available.unwrap_or(0));
    w!(w, 0, "Number of Nodes Misscheduled: {}\n", status.number_misscheduled);
    w!(w, 0, "Pods Status:\t{}\n", pods_status(&related.pods));
    pod_template(&mut w, Some(&spec.template));
    events(&mut w, related.events.as_ref());
    w.finish()
}

/// The description of a job (kubectl 1.33's `describeJob`: optional fields
/// only when set).
pub fn job(job: &Job, related: &Related) -> String {
    let mut w = Writer::default();
    let spec = job.spec.clone().unwrap_or_default();
    let status = job.status.clone().unwrap_or_default();
    header(&mut w, &job.metadata);
    let selector = spec.selector.as_ref().map(format_label_selector).filter(|s| s != "<none>").unwrap_or_default();
    w!(w, 0, "Selector:\t{selector}\n");
    labels(&mut w, "Labels", job.metadata.labels.as_ref());
    annotations(&mut w, "Annotations", job.metadata.annotations.as_ref());
    controlled_by(&mut w, &job.metadata);
    if let Some(p) = spec.parallelism {
        w!(w, 0, "Parallelism:\t{p}\n");
    }
    match spec.completions {
        Some(c) => w!(w, 0, "Completions:\t{c}\n"),
        None => w!(w, 0, "Completions:\t<unset>\n"),
    }
    if let Some(mode) = &spec.completion_mode {
        w!(w, 0, "Completion Mode:\t{mode}\n");
    }
    if let Some(suspend) = spec.suspend {
        w!(w, 0, "Suspend:\t{suspend}\n");
    }
    if let Some(limit) = spec.backoff_limit {
        w!(w, 0, "Backoff Limit:\t{limit}\n");
    }
    if let Some(ttl) = spec.ttl_seconds_after_finished {
        w!(w, 0, "TTL Seconds After Finished:\t{ttl}\n");
    }
    if let Some(t) = &status.start_time {
        w!(w, 0, "Start Time:\t{}\n", age::rfc1123(t));
    }
    if let Some(t) = &status.completion_time {
        w!(w, 0, "Completed At:\t{}\n", age::rfc1123(t));
    }
    if let (Some(start), Some(end)) = (&status.start_time, &status.completion_time) {
        w!(w, 0, "Duration:\t{}\n", age::between(start, end));
    }
    if let Some(d) = spec.active_deadline_seconds {
        w!(w, 0, "Active Deadline Seconds:\t{d}s\n");
    }
    match status.ready {
        None => w!(
            w,
            0,
            "Pods Statuses:\t{} Active / {} Succeeded / {} Failed\n",
            status.active.unwrap_or(0),
            status.succeeded.unwrap_or(0),
            status.failed.unwrap_or(0)
        ),
        Some(ready) => w!(
            w,
            0,
            "Pods Statuses:\t{} Active ({ready} Ready) / {} Succeeded / {} Failed\n",
            status.active.unwrap_or(0),
            status.succeeded.unwrap_or(0),
            status.failed.unwrap_or(0)
        ),
    }
    if spec.completion_mode.as_deref() == Some("Indexed") {
        w!(
            w,
            0,
            "Completed Indexes:\t{}\n",
            capped_indexes(status.completed_indexes.as_deref().unwrap_or_default(), 50)
        );
    }
    pod_template(&mut w, Some(&spec.template));
    events(&mut w, related.events.as_ref());
    w.finish()
}

/// kubectl's `capIndexesListOrNone`: the list up to the first comma past
/// `soft_limit` characters, then `...`.
fn capped_indexes(indexes: &str, soft_limit: usize) -> String {
    if indexes.is_empty() {
        return "<none>".into();
    }
    match indexes.char_indices().skip(soft_limit).find(|(_, c)| *c == ',') {
        Some((i, _)) => format!("{}...", &indexes[..=i]),
        None => indexes.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rc_description_counts_pods_by_phase_and_shows_the_template() {
        let rc: ReplicationController = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"replicas": 2, "selector": {"app": "web"}, "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}}},
            "status": {"replicas": 2},
        }))
        .expect("rc");
        let pods: Vec<Pod> = vec![
            serde_json::from_value(json!({"metadata": {"name": "a"}, "status": {"phase": "Running"}})).expect("pod"),
            serde_json::from_value(json!({"metadata": {"name": "b"}})).expect("pod"),
        ];
        let text = replication_controller(&rc, &Related { pods, ..Default::default() });
        assert!(text.contains("Replicas:     2 current / 2 desired\n"), "{text}");
        assert!(text.contains("Pods Status:  1 Running / 1 Waiting / 0 Succeeded / 0 Failed\n"), "{text}");
        assert!(text.contains("Pod Template:\n  Labels:  app=web\n  Containers:\n   web:\n"), "{text}");
        assert!(text.contains("    Image:         nginx\n"), "{text}");
    }

    #[test]
    fn deployment_description_names_old_and_new_replica_sets() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2024-01-02T03:04:05Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "v2"}]}}},
            "status": {"replicas": 4, "updatedReplicas": 1, "availableReplicas": 3, "unavailableReplicas": 1,
                       "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]},
        }))
        .expect("deployment");
        let rs = |name: &str, have: i32, want: i32| -> ReplicaSet {
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"replicas": want, "selector": {}}, "status": {"replicas": have}}))
                .expect("rs")
        };
        let related = Related {
            old_replica_sets: vec![rs("web-1", 3, 3)],
            new_replica_set: Some(rs("web-2", 1, 1)),
            ..Default::default()
        };
        let text = deployment(&d, &related);
        assert!(text.contains("CreationTimestamp:      Tue, 02 Jan 2024 03:04:05 +0000\n"), "{text}");
        assert!(
            text.contains("Replicas:               3 desired | 1 updated | 4 total | 3 available | 1 unavailable\n"),
            "{text}"
        );
        assert!(text.contains("RollingUpdateStrategy:  0 max unavailable, 1 max surge\n"), "{text}");
        assert!(text.contains("  Progressing    True    ReplicaSetUpdated\n"), "{text}");
        assert!(
            text.contains(
                "OldReplicaSets:  web-1 (3/3 replicas created)\nNewReplicaSet:   web-2 (1/1 replicas created)\n"
            ),
            "{text}"
        );
        let none = deployment(&d, &Related::default());
        assert!(!none.contains("OldReplicaSets"), "{none}");
    }

    #[test]
    fn job_description_shows_only_the_fields_that_are_set() {
        let j: Job = serde_json::from_value(json!({
            "metadata": {"name": "count", "namespace": "default"},
            "spec": {"completions": 4, "parallelism": 2, "backoffLimit": 4, "selector": {"matchLabels": {"job-name": "count"}},
                     "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}},
            "status": {"active": 2, "succeeded": 1, "ready": 1},
        }))
        .expect("job");
        let text = job(&j, &Related::default());
        assert!(text.contains("Selector:       job-name=count\n"), "{text}");
        assert!(text.contains("Parallelism:    2\nCompletions:    4\nBackoff Limit:  4\n"), "{text}");
        assert!(text.contains("Pods Statuses:  2 Active (1 Ready) / 1 Succeeded / 0 Failed\n"), "{text}");
        assert!(!text.contains("Suspend"), "{text}");
        assert_eq!(capped_indexes("", 50), "<none>");
        assert_eq!(capped_indexes("1,2,3", 50), "1,2,3");
        assert_eq!(capped_indexes("0-9,11,13,15", 5), "0-9,11,...");
    }
}
