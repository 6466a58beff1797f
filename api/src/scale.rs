//! The `scale` subresource (autoscaling/v1 `Scale`) of the replicated kinds:
//! ReplicationController, ReplicaSet and Deployment. `spec.replicas` of the
//! Scale is the object's `spec.replicas`; `status.replicas` and
//! `status.selector` (the label selector as a string, for HPAs) come from
//! the object.

use crate::error::{ApiError, Result};
use crate::resource::ResourceInfo;
use crate::selector::Selector;
use crate::validation::causes::invalid_value;
use serde_json::{Value, json};

/// The API version and kind of a Scale.
pub const SCALE_API_VERSION: &str = "autoscaling/v1";
/// The kind of a Scale.
pub const SCALE_KIND: &str = "Scale";

/// Whether `info`'s objects have a scale subresource.
pub fn has_scale(info: &ResourceInfo) -> bool {
    matches!((info.group, info.kind), ("", "ReplicationController") | ("apps", "ReplicaSet" | "Deployment"))
}

/// Refuses a scale request for a resource without the subresource.
pub fn require_scale(info: &ResourceInfo) -> Result<()> {
    if has_scale(info) {
        return Ok(());
    }
    Err(ApiError::not_found_resource(&format!("{}/scale", info.plural)))
}

/// The Scale of `obj` (stored JSON of a replicated kind).
pub fn scale_of(obj: &Value) -> Value {
    let selector = match &obj["spec"]["selector"] {
        Value::Object(map) if map.contains_key("matchLabels") || map.contains_key("matchExpressions") => {
            serde_json::from_value(obj["spec"]["selector"].clone())
                .ok()
                .and_then(|ls| Selector::from_label_selector(&ls).ok())
                .map(|s| s.to_string())
                .unwrap_or_default()
        }
        Value::Object(map) => {
            let map = map.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect();
            Selector::from_map(&map).to_string()
        }
        _ => String::new(),
    };
    let meta = &obj["metadata"];
    let mut metadata = json!({});
    for field in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
        if !meta[field].is_null() {
            metadata[field] = meta[field].clone();
        }
    }
    json!({
        "apiVersion": SCALE_API_VERSION,
        "kind": SCALE_KIND,
        "metadata": metadata,
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

/// The replicas a Scale body asks for, checked: `spec.replicas` must be a
/// number ≥ 0 (missing means 0, as in Kubernetes).
pub fn requested_replicas(scale: &Value, name: &str) -> Result<i64> {
    let replicas = &scale["spec"]["replicas"];
    match replicas {
        Value::Null => Ok(0),
        v => match v.as_i64() {
            Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::invalid(
                SCALE_KIND,
                name,
                vec![invalid_value("spec.replicas", n, "must be greater than or equal to 0")],
            )),
            None => Err(ApiError::invalid(
                SCALE_KIND,
                name,
                vec![invalid_value("spec.replicas", v.clone(), "must be an integer")],
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::for_kind;

    #[test]
    fn scale_reads_replicas_and_the_selector_of_each_kind() {
        let rc = json!({"metadata": {"name": "fe", "namespace": "default", "uid": "u", "resourceVersion": "7",
            "labels": {"x": "y"}},
            "spec": {"replicas": 3, "selector": {"name": "frontend"}}, "status": {"replicas": 2}});
        assert_eq!(
            scale_of(&rc),
            json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": "fe", "namespace": "default", "uid": "u", "resourceVersion": "7"},
                "spec": {"replicas": 3}, "status": {"replicas": 2, "selector": "name=frontend"}})
        );
        let deploy = json!({"metadata": {"name": "web"}, "spec": {"replicas": 0,
            "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}}});
        let scale = scale_of(&deploy);
        assert_eq!(scale["spec"]["replicas"], 0);
        assert_eq!(scale["status"], json!({"replicas": 0, "selector": "app=web,tier in (a,b)"}));
    }

    #[test]
    fn only_replicated_kinds_have_scale() {
        assert!(has_scale(for_kind("v1", "ReplicationController").unwrap()));
        assert!(has_scale(for_kind("apps/v1", "Deployment").unwrap()));
        assert!(has_scale(for_kind("apps/v1", "ReplicaSet").unwrap()));
        assert!(!has_scale(for_kind("apps/v1", "DaemonSet").unwrap()));
        assert!(require_scale(for_kind("v1", "Pod").unwrap()).is_err());
    }

    #[test]
    fn negative_or_non_numeric_replicas_are_invalid_with_the_field() {
        assert_eq!(requested_replicas(&json!({"spec": {"replicas": 4}}), "fe").unwrap(), 4);
        let e = requested_replicas(&json!({"spec": {"replicas": -1}}), "fe").unwrap_err();
        assert_eq!(
            e.message,
            "Scale \"fe\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        let e = requested_replicas(&json!({"spec": {"replicas": "x"}}), "fe").unwrap_err();
        assert!(e.message.contains("spec.replicas: Invalid value: \"x\""), "{}", e.message);
    }
}
