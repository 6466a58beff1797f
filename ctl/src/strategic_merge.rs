//! The three-way merge behind client-side `apply`, with the list semantics
//! of Kubernetes' strategic merge patch: given the configuration applied
//! last time (*original*, from the `last-applied-configuration` annotation),
//! the configuration applied now (*modified*) and the live object
//! (*current*), it computes the object apply should leave:
//!
//! - a field in *modified* takes its value from there (maps merge
//!   recursively, keeping what others set that *modified* does not mention);
//! - a field in *original* but no longer in *modified* is removed;
//! - a field set to null in *modified* is removed;
//! - lists with a merge key (containers by name, container ports by
//!   containerPort, env by name, volumeMounts by mountPath, ...; the table is
//!   [`rkube_api::patch::merge_keys`], shared with the server) merge item by
//!   item: items in *modified* (in its order) merged with their live
//!   counterparts, items dropped from *modified* since *original* removed,
//!   items only the server added kept after them; other lists are replaced;
//! - `retainKeys` (a Deployment's strategy, each volume): keys *modified*
//!   does not set are cleared, so switching the strategy type or volume
//!   source leaves no stale sibling behind.
//!
//! kubectl computes these as a patch; rkube's API takes merge and JSON
//! patches, neither of which can merge lists by key, so `apply` computes the
//! merged object here and sends it as an update conditional on the live
//! resourceVersion (retrying on conflict), which ends in the same object.

use rkube_api::patch::{merge_key, retains_keys};
use serde_json::{Map, Value};

/// The object apply leaves: `modified` merged into `current`, with what
/// `original` had and `modified` dropped removed.
pub fn three_way(kind: &str, original: Option<&Value>, modified: &Value, current: &Value) -> Value {
    merge(kind, &mut Vec::new(), original, modified, Some(current))
}

fn merge(
    kind: &str,
    path: &mut Vec<String>,
    original: Option<&Value>,
    modified: &Value,
    current: Option<&Value>,
) -> Value {
    match modified {
        Value::Object(m) => {
            let mut out: Map<String, Value> = current.and_then(Value::as_object).cloned().unwrap_or_default();
            let orig = original.and_then(Value::as_object);
            if let Some(o) = orig {
                for k in o.keys().filter(|k| !m.contains_key(*k)) {
                    out.remove(k);
                }
            }
            if retains_keys(kind, path) {
                out.retain(|k, _| m.contains_key(k));
            }
            for (k, mv) in m {
                if mv.is_null() {
                    out.remove(k);
                    continue;
                }
                path.push(k.clone());
                let merged = merge(kind, path, orig.and_then(|o| o.get(k)), mv, out.get(k));
                path.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        Value::Array(items) => match merge_key(kind, path) {
            Some(key) if items.iter().all(|i| i.get(key).is_some()) => merge_list(
                kind,
                path,
                key,
                original.and_then(Value::as_array),
                items,
                current.and_then(Value::as_array),
            ),
            _ => modified.clone(),
        },
        other => other.clone(),
    }
}

fn merge_list(
    kind: &str,
    path: &mut Vec<String>,
    key: &str,
    original: Option<&Vec<Value>>,
    modified: &[Value],
    current: Option<&Vec<Value>>,
) -> Value {
    let find =
        |list: Option<&Vec<Value>>, k: &Value| list.and_then(|l| l.iter().find(|i| i.get(key) == Some(k)).cloned());
    let mut out: Vec<Value> = Vec::new();
    for item in modified {
        let k = &item[key];
        let orig = find(original, k);
        let live = find(current, k);
        out.push(merge(kind, path, orig.as_ref(), item, live.as_ref()));
    }
    for live in current.into_iter().flatten() {
        let Some(k) = live.get(key) else { continue };
        let in_modified = modified.iter().any(|i| i.get(key) == Some(k));
        let in_original = find(original, k).is_some();
        if !in_modified && !in_original {
            out.push(live.clone());
        }
    }
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_dropped_from_the_configuration_are_removed_and_others_kept() {
        let original = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}, "spec": {"replicas": 2}});
        let modified = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"replicas": 3}});
        let current = json!({
            "metadata": {"labels": {"app": "web", "tier": "front", "team": "a"}, "uid": "u1"},
            "spec": {"replicas": 2, "revisionHistoryLimit": 10},
            "status": {"replicas": 2},
        });
        let merged = three_way("Deployment", Some(&original), &modified, &current);
        assert_eq!(
            merged,
            json!({
                "metadata": {"labels": {"app": "web", "team": "a"}, "uid": "u1"},
                "spec": {"replicas": 3, "revisionHistoryLimit": 10},
                "status": {"replicas": 2},
            })
        );
    }

    #[test]
    fn containers_merge_by_name_keeping_server_defaults() {
        let path_spec = |containers: Value| json!({"spec": {"template": {"spec": {"containers": containers}}}});
        let original = path_spec(json!([{"name": "web", "image": "v1"}, {"name": "side", "image": "s"}]));
        let modified = path_spec(json!([{"name": "web", "image": "v2", "env": [{"name": "A", "value": "1"}]}]));
        let current = path_spec(json!([
            {"name": "side", "image": "s", "imagePullPolicy": "IfNotPresent"},
            {"name": "web", "image": "v1", "imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log"},
            {"name": "injected", "image": "proxy"},
        ]));
        let merged = three_way("Deployment", Some(&original), &modified, &current);
        assert_eq!(
            merged["spec"]["template"]["spec"]["containers"],
            json!([
                {"name": "web", "image": "v2", "imagePullPolicy": "IfNotPresent",
                 "terminationMessagePath": "/dev/termination-log", "env": [{"name": "A", "value": "1"}]},
                {"name": "injected", "image": "proxy"},
            ])
        );
    }

    #[test]
    fn container_ports_merge_by_port_and_service_ports_by_port() {
        let modified =
            json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "name": "http"}]}]}});
        let current =
            json!({"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}});
        let merged = three_way("Pod", None, &modified, &current);
        assert_eq!(
            merged["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80, "name": "http", "protocol": "TCP"}])
        );
        let svc_modified = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}});
        let svc_current =
            json!({"spec": {"ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}], "clusterIP": "10.0.0.1"}});
        let merged = three_way("Service", None, &svc_modified, &svc_current);
        assert_eq!(merged["spec"]["ports"], json!([{"port": 80, "targetPort": 8080, "protocol": "TCP"}]));
        assert_eq!(merged["spec"]["clusterIP"], "10.0.0.1");
    }

    #[test]
    fn lists_without_a_key_are_replaced() {
        let modified = json!({"spec": {"containers": [{"name": "c", "args": ["b"]}]}});
        let current = json!({"spec": {"containers": [{"name": "c", "args": ["a", "x"]}]}});
        assert_eq!(three_way("Pod", None, &modified, &current)["spec"]["containers"][0]["args"], json!(["b"]));
    }

    #[test]
    fn a_new_strategy_type_drops_the_old_ones_settings() {
        let modified = json!({"spec": {"strategy": {"type": "Recreate"}}});
        let current = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}}}});
        assert_eq!(three_way("Deployment", None, &modified, &current)["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn null_removes_a_field() {
        let merged =
            three_way("ConfigMap", None, &json!({"data": {"a": null, "b": "2"}}), &json!({"data": {"a": "1"}}));
        assert_eq!(merged, json!({"data": {"b": "2"}}));
    }
}
