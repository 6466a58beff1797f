//! A deployment's revisions, read the way kubectl's `deploymentutil` reads
//! them: the ReplicaSets the deployment controls (selected by its selector
//! and owned through a controller ownerReference), each numbered by its
//! `deployment.kubernetes.io/revision` annotation; the *new* one is the
//! oldest whose pod template equals the deployment's, ignoring the
//! `pod-template-hash` label. Used by `rollout history`, `rollout undo` and
//! `describe deployment`.

use crate::commands::list;
use crate::printers::columns::format_label_selector;
use crate::resources::resource_type;
use crate::session::Session;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

/// The revision annotation on deployments and their ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The label that ties a ReplicaSet and its pods to one pod template.
pub const HASH_LABEL: &str = "pod-template-hash";
/// The annotation `rollout history` shows as CHANGE-CAUSE.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// The object's revision, if it has a valid one.
pub fn revision(obj: &Value) -> Option<i64> {
    obj.pointer("/metadata/annotations").and_then(|a| a.get(REVISION)).and_then(Value::as_str)?.parse().ok()
}

/// The ReplicaSets `deployment` controls, in the server's (name) order.
pub async fn owned_replica_sets(s: &Session, deployment: &Value) -> anyhow::Result<Vec<Value>> {
    let uid = deployment.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default();
    let namespace = deployment.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or(&s.namespace);
    let selector: LabelSelector =
        serde_json::from_value(deployment.pointer("/spec/selector").cloned().unwrap_or_default()).unwrap_or_default();
    let selector = format_label_selector(&selector);
    // A deployment without a selector selects nothing.
    if selector == "<none>" {
        return Ok(Vec::new());
    }
    let all = list(s, resource_type("replicasets")?, namespace, Some(&selector), None).await?;
    Ok(all.into_iter().filter(|rs| controlled_by(rs, uid)).collect())
}

/// Whether `obj` has a controller ownerReference to `uid`.
pub fn controlled_by(obj: &Value, uid: &str) -> bool {
    obj.pointer("/metadata/ownerReferences").and_then(Value::as_array).is_some_and(|refs| {
        refs.iter().any(|r| r.get("controller").and_then(Value::as_bool) == Some(true) && r["uid"] == uid)
    })
}

/// Removes empty maps, empty lists and nulls, so that a field set to `{}`
/// compares equal to a missing one (as Go's semantic equality treats them).
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normalized(v)))
                .filter(|(_, v)| {
                    !(v.is_null()
                        || v.as_object().is_some_and(|m| m.is_empty())
                        || v.as_array().is_some_and(|a| a.is_empty()))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

/// A pod template without the `pod-template-hash` label.
pub fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove(HASH_LABEL);
    }
    t
}

/// kubectl's `EqualIgnoreHash`: the templates are equal but for the hash label.
pub fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    normalized(&without_hash(a)) == normalized(&without_hash(b))
}

fn template(obj: &Value) -> Value {
    obj.pointer("/spec/template").cloned().unwrap_or_default()
}

/// kubectl's `FindNewReplicaSet`: the oldest ReplicaSet whose template is
/// the deployment's.
pub fn new_replica_set<'a>(deployment: &Value, replica_sets: &'a [Value]) -> Option<&'a Value> {
    let wanted = template(deployment);
    let mut matching: Vec<&Value> =
        replica_sets.iter().filter(|rs| equal_ignore_hash(&template(rs), &wanted)).collect();
    matching.sort_by_key(|rs| {
        let created = rs.pointer("/metadata/creationTimestamp").and_then(Value::as_str).unwrap_or_default().to_string();
        let name = rs.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        (created, name)
    });
    matching.first().copied()
}

/// kubectl's `FindOldReplicaSets`: the others, first only those that still
/// want pods, then all of them.
pub fn old_replica_sets<'a>(deployment: &Value, replica_sets: &'a [Value]) -> (Vec<&'a Value>, Vec<&'a Value>) {
    let new_name = new_replica_set(deployment, replica_sets).and_then(|rs| rs.pointer("/metadata/name").cloned());
    let all: Vec<&Value> = replica_sets
        .iter()
        .filter(|rs| new_name.is_none() || rs.pointer("/metadata/name").cloned() != new_name)
        .collect();
    let with_pods: Vec<&Value> = all
        .iter()
        .copied()
        .filter(|rs| rs.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1) != 0)
        .collect();
    (with_pods, all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rs(name: &str, created: &str, image: &str, replicas: i64) -> Value {
        json!({
            "metadata": {"name": name, "creationTimestamp": created, "annotations": {REVISION: "1"}},
            "spec": {"replicas": replicas, "template": {
                "metadata": {"labels": {"app": "web", HASH_LABEL: name}},
                "spec": {"containers": [{"name": "web", "image": image}]}}},
        })
    }

    #[test]
    fn templates_compare_without_the_hash_label_and_empty_fields() {
        let a =
            json!({"metadata": {"labels": {"app": "web", HASH_LABEL: "abc"}}, "spec": {"containers": [{"name": "w"}]}});
        let b = json!({"metadata": {"labels": {"app": "web"}, "annotations": {}}, "spec": {"containers": [{"name": "w"}], "volumes": []}});
        assert!(equal_ignore_hash(&a, &b));
        let c = json!({"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "w"}]}});
        assert!(!equal_ignore_hash(&a, &c));
    }

    #[test]
    fn the_new_replica_set_is_the_oldest_with_the_deployments_template() {
        let deployment = json!({"spec": {"template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "v2"}]}}}});
        let sets = vec![
            rs("web-1", "2024-01-01T00:00:00Z", "v1", 0),
            rs("web-3", "2024-01-03T00:00:00Z", "v2", 1),
            rs("web-2", "2024-01-02T00:00:00Z", "v2", 2),
        ];
        assert_eq!(new_replica_set(&deployment, &sets).map(|r| r["metadata"]["name"].clone()), Some(json!("web-2")));
        let (with_pods, all) = old_replica_sets(&deployment, &sets);
        let names = |v: Vec<&Value>| {
            v.iter().map(|r| r["metadata"]["name"].as_str().unwrap_or("").to_string()).collect::<Vec<_>>()
        };
        assert_eq!(names(with_pods), ["web-3"]);
        assert_eq!(names(all), ["web-1", "web-3"]);
    }

    #[test]
    fn revisions_parse_from_the_annotation() {
        assert_eq!(revision(&json!({"metadata": {"annotations": {REVISION: "4"}}})), Some(4));
        assert_eq!(revision(&json!({"metadata": {"annotations": {REVISION: "x"}}})), None);
        assert_eq!(revision(&json!({})), None);
    }
}
