//! `rollout history` and `rollout undo` of deployments: their revisions are
//! the ReplicaSets they control ([`crate::revisions`]); undo copies the
//! chosen revision's pod template (without `pod-template-hash`) and
//! annotations back into the deployment, as kubectl's `DeploymentRollbacker`
//! does. Daemon sets keep their history in ControllerRevisions, which rkube
//! does not have: their history is empty.

use super::super::print;
use super::super::targets::group_kind;
use super::resolve;
use crate::cli::{RolloutHistoryArgs, RolloutUndoArgs};
use crate::printers::describe::pod_template_text;
use crate::printers::object::{self, Format};
use crate::printers::tabwriter::TabWriter;
use crate::report::{Reported, usage};
use crate::revisions::{self, CHANGE_CAUSE};
use crate::session::Session;
use rkube_api::{Reason, ResourceInfo};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Annotations a rollback keeps from the deployment instead of taking them
/// from the ReplicaSet (kubectl's `annotationsToSkip`).
const KEPT_ON_ROLLBACK: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// kubectl's `DeploymentHistoryViewer.ViewHistory`: the REVISION/CHANGE-CAUSE
/// table, or one revision's pod template.
fn deployment_history(sets: &[Value], revision: i64) -> Result<String, String> {
    let mut history: BTreeMap<i64, Value> = BTreeMap::new();
    for rs in sets {
        let Some(v) = revisions::revision(rs) else { continue };
        let mut template = rs.pointer("/spec/template").cloned().unwrap_or_default();
        let cause = rs.pointer("/metadata/annotations").and_then(|a| a.get(CHANGE_CAUSE)).cloned();
        if let Some(cause) = cause.filter(|c| c.as_str().is_some_and(|c| !c.is_empty())) {
            template["metadata"]["annotations"][CHANGE_CAUSE] = cause;
        }
        history.insert(v, template);
    }
    if history.is_empty() {
        return Ok("No rollout history found.".into());
    }
    if revision > 0 {
        let template = history.get(&revision).ok_or("unable to find the specified revision")?;
        return pod_template_text(template).map_err(|e| e.to_string());
    }
    let mut text = String::from("REVISION\tCHANGE-CAUSE\n");
    for (v, template) in &history {
        let cause = template
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(CHANGE_CAUSE))
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .unwrap_or("<none>");
        text.push_str(&format!("{v}\t{cause}\n"));
    }
    Ok(TabWriter::describe().align(&text))
}

/// Runs `rollout history`.
pub async fn history(s: &Session, a: &RolloutHistoryArgs) -> anyhow::Result<()> {
    if a.revision < 0 {
        return Err(usage(format!("revision must be a positive integer: {}", a.revision)));
    }
    let format = Format::parse(a.targets.output.as_deref(), &[Format::Table, Format::Name])?;
    let found = resolve(s, &a.targets, "rollout history").await?;
    for (info, obj) in &found.objects {
        let text = match info.kind {
            "Deployment" => {
                let sets = revisions::owned_replica_sets(s, obj).await?;
                deployment_history(&sets, a.revision).map_err(usage)?
            }
            // rkube keeps no ControllerRevisions.
            "DaemonSet" => "No rollout history found.".to_string(),
            _ => return Err(usage(format!("no history viewer has been implemented for \"{}\"", group_kind(info)))),
        };
        let reference = object::reference(info, object::name_of(obj));
        let with_revision = if a.revision > 0 { format!("with revision #{}", a.revision) } else { String::new() };
        match format {
            Format::Name => print(&format!("{reference}\n"))?,
            _ => print(&format!("{reference} {with_revision}\n{text}\n"))?,
        }
    }
    if found.failed { Err(Reported.into()) } else { Ok(()) }
}

/// kubectl's `deploymentRevision`: the ReplicaSet of `to_revision`, or for 0
/// the one before the latest.
fn revision_to_restore<'a>(name: &str, sets: &'a [Value], to_revision: i64) -> Result<&'a Value, String> {
    let mut numbered: Vec<(i64, &Value)> =
        sets.iter().filter_map(|rs| revisions::revision(rs).map(|v| (v, rs))).collect();
    if to_revision > 0 {
        return numbered
            .into_iter()
            .find(|(v, _)| *v == to_revision)
            .map(|(_, rs)| rs)
            .ok_or_else(|| format!("unable to find specified revision {to_revision} in history"));
    }
    numbered.sort_by_key(|(v, _)| *v);
    numbered.dedup_by_key(|(v, _)| *v);
    match numbered.len() {
        0 | 1 => Err(format!("no rollout history found for deployment \"{name}\"")),
        n => Ok(numbered[n - 2].1),
    }
}

/// The deployment's annotations after a rollback to `rs`.
fn annotations_after_rollback(deployment: &Value, rs: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    let own = deployment.pointer("/metadata/annotations").and_then(Value::as_object).cloned().unwrap_or_default();
    for k in KEPT_ON_ROLLBACK {
        if let Some(v) = own.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    for (k, v) in rs.pointer("/metadata/annotations").and_then(Value::as_object).into_iter().flatten() {
        if !KEPT_ON_ROLLBACK.contains(&k.as_str()) {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// kubectl's `DeploymentRollbacker.Rollback`: what to print after the name.
async fn roll_back_deployment(
    s: &Session,
    info: &ResourceInfo,
    obj: &Value,
    to_revision: i64,
) -> Result<String, String> {
    if to_revision < 0 {
        return Err(format!("unable to find specified revision {to_revision} in history"));
    }
    let name = object::name_of(obj);
    let namespace = object::namespace_of(obj);
    for _ in 0..5 {
        let deployment = match s.client.get(info, namespace, name).await {
            Ok(o) => serde_json::from_slice::<Value>(&o.json).map_err(|e| e.to_string())?,
            Err(e) => return Err(format!("failed to retrieve Deployment {name}: {}", e.message)),
        };
        let sets = revisions::owned_replica_sets(s, &deployment)
            .await
            .map_err(|e| format!("failed to retrieve replica sets from deployment {name}: {e}"))?;
        let rs = revision_to_restore(name, &sets, to_revision)?;
        if deployment.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
            return Err(format!(
                "you cannot rollback a paused deployment; resume it first with 'rkubectl rollout resume deployment/{name}' and try again"
            ));
        }
        let template = rs.pointer("/spec/template").cloned().unwrap_or_default();
        let current = deployment.pointer("/spec/template").cloned().unwrap_or_default();
        if revisions::equal_ignore_hash(&template, &current) {
            return Ok(format!("skipped rollback (current template already matches revision {to_revision})"));
        }
        // kubectl sends a JSON patch replacing both; an update conditional on
        // the resourceVersion read here does the same without a lost race.
        let mut updated = deployment.clone();
        updated["spec"]["template"] = revisions::without_hash(&template);
        updated["metadata"]["annotations"] = Value::Object(annotations_after_rollback(&deployment, rs));
        let body = serde_json::to_vec(&updated).expect("a Value always serializes");
        match s.client.update(info, namespace, name, body).await {
            Ok(_) => return Ok("rolled back".into()),
            Err(e) if e.reason == Reason::Conflict => continue,
            Err(e) => return Err(format!("failed restoring revision {to_revision}: {}", e.message)),
        }
    }
    Err(format!("failed restoring revision {to_revision}: the object kept changing"))
}

/// Runs `rollout undo`.
pub async fn undo(s: &Session, a: &RolloutUndoArgs) -> anyhow::Result<()> {
    let format = Format::parse(a.targets.output.as_deref(), &[Format::Table, Format::Name])?;
    let found = resolve(s, &a.targets, "rollout undo").await?;
    for (info, obj) in &found.objects {
        let outcome = match info.kind {
            "Deployment" => roll_back_deployment(s, info, obj, a.to_revision).await,
            // No ControllerRevisions in rkube: never a revision to go back to.
            "DaemonSet" if a.to_revision == 0 => Err("no last revision to roll back to".to_string()),
            "DaemonSet" => Err(format!("unable to find specified revision {} in history", a.to_revision)),
            _ => Err(format!("no rollbacker has been implemented for \"{}\"", group_kind(info))),
        };
        let result = outcome.map_err(usage)?;
        let reference = object::reference(info, object::name_of(obj));
        match format {
            Format::Name => print(&format!("{reference}\n"))?,
            _ => print(&format!("{reference} {result}\n"))?,
        }
    }
    if found.failed { Err(Reported.into()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rs(revision: &str, image: &str, cause: Option<&str>) -> Value {
        let mut annotations = json!({revisions::REVISION: revision, "deployment.kubernetes.io/desired-replicas": "3"});
        if let Some(c) = cause {
            annotations[CHANGE_CAUSE] = c.into();
        }
        json!({
            "metadata": {"name": format!("web-{revision}"), "annotations": annotations},
            "spec": {"template": {
                "metadata": {"labels": {"app": "web", revisions::HASH_LABEL: format!("h{revision}")}},
                "spec": {"containers": [{"name": "web", "image": image}]}}},
        })
    }

    #[test]
    fn history_lists_revisions_with_their_change_cause() {
        let sets = vec![rs("2", "v2", Some("set image to v2")), rs("1", "v1", None)];
        let text = deployment_history(&sets, 0).expect("history");
        assert_eq!(text, "REVISION  CHANGE-CAUSE\n1         <none>\n2         set image to v2\n");
        assert_eq!(deployment_history(&[], 0).expect("empty"), "No rollout history found.");
        assert_eq!(deployment_history(&sets, 7).expect_err("missing"), "unable to find the specified revision");
    }

    #[test]
    fn one_revision_shows_its_pod_template_with_tabs() {
        let sets = vec![rs("1", "v1", None)];
        let text = deployment_history(&sets, 1).expect("template");
        assert!(
            text.starts_with(
                "Pod Template:\n  Labels:\tapp=web\n\tpod-template-hash=h1\n  Containers:\n   web:\n    Image:\tv1\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn undo_goes_to_the_previous_revision_or_the_one_asked_for() {
        let sets = vec![rs("3", "v3", None), rs("1", "v1", None), rs("2", "v2", None)];
        let name = |r: Result<&Value, String>| r.map(|v| v["metadata"]["name"].as_str().unwrap_or("").to_string());
        assert_eq!(name(revision_to_restore("web", &sets, 0)), Ok("web-2".into()));
        assert_eq!(name(revision_to_restore("web", &sets, 1)), Ok("web-1".into()));
        assert_eq!(
            name(revision_to_restore("web", &sets, 9)),
            Err("unable to find specified revision 9 in history".into())
        );
        assert_eq!(
            name(revision_to_restore("web", &sets[..1], 0)),
            Err("no rollout history found for deployment \"web\"".into())
        );
    }

    #[test]
    fn rollback_keeps_the_deployments_own_annotations() {
        let deployment = json!({"metadata": {"annotations": {
            revisions::REVISION: "3", "kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "a"}}});
        let out = annotations_after_rollback(&deployment, &rs("1", "v1", Some("first")));
        assert_eq!(
            Value::Object(out),
            json!({revisions::REVISION: "3", "kubectl.kubernetes.io/last-applied-configuration": "{}", CHANGE_CAUSE: "first"})
        );
    }
}
