//! `describe` for kinds without their own describer: the metadata kubectl
//! always shows, then every other field as nested `Key:  value` lines with
//! camelCase keys spelled out (`holderIdentity` → `Holder Identity`).

use super::{Related, Writer, annotations, events, labels, w};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

/// The description of any object.
pub fn describe(object: &Value, related: &Related) -> String {
    let mut w = Writer::default();
    let meta: ObjectMeta =
        object.get("metadata").and_then(|m| serde_json::from_value(m.clone()).ok()).unwrap_or_default();
    w!(w, 0, "Name:\t{}\n", meta.name.clone().unwrap_or_default());
    if let Some(ns) = meta.namespace.as_deref().filter(|n| !n.is_empty()) {
        w!(w, 0, "Namespace:\t{ns}\n");
    }
    labels(&mut w, "Labels", meta.labels.as_ref());
    annotations(&mut w, "Annotations", meta.annotations.as_ref());
    for (key, title) in [("apiVersion", "API Version"), ("kind", "Kind")] {
        if let Some(v) = object.get(key).and_then(Value::as_str) {
            w!(w, 0, "{title}:\t{v}\n");
        }
    }
    if let Some(fields) = object.as_object() {
        for (k, v) in fields {
            if !matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                field(&mut w, 0, k, v);
            }
        }
    }
    events(&mut w, related.events.as_ref());
    w.finish()
}

/// The description of a namespace.
pub fn namespace(ns: &Namespace) -> String {
    let mut w = Writer::default();
    w!(w, 0, "Name:\t{}\n", ns.metadata.name.clone().unwrap_or_default());
    labels(&mut w, "Labels", ns.metadata.labels.as_ref());
    annotations(&mut w, "Annotations", ns.metadata.annotations.as_ref());
    let phase = ns.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_else(|| "Active".into());
    w!(w, 0, "Status:\t{phase}\n");
    w.finish()
}

fn field(w: &mut Writer, level: usize, key: &str, value: &Value) {
    let title = spell_out(key);
    match value {
        Value::Object(map) => {
            w!(w, level, "{title}:\n");
            for (k, v) in map {
                field(w, level + 1, k, v);
            }
        }
        Value::Array(items) => {
            w!(w, level, "{title}:\n");
            for item in items {
                match item {
                    Value::Object(map) => {
                        for (k, v) in map {
                            field(w, level + 1, k, v);
                        }
                    }
                    other => w!(w, level + 1, "{}\n", scalar(other)),
                }
            }
        }
        other => w!(w, level, "{title}:\t{}\n", scalar(other)),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `holderIdentity` → `Holder Identity`, `podIP` → `Pod IP`.
fn spell_out(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if i == 0 {
            out.extend(c.to_uppercase());
            continue;
        }
        let prev = chars[i - 1];
        let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
        if c.is_uppercase() && (prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower)) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn camel_case_keys_are_spelled_out() {
        assert_eq!(spell_out("holderIdentity"), "Holder Identity");
        assert_eq!(spell_out("podIP"), "Pod IP");
        assert_eq!(spell_out("clusterIPFamily"), "Cluster IP Family");
        assert_eq!(spell_out("spec"), "Spec");
    }

    #[test]
    fn generic_description_nests_fields() {
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "n1", "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40},
        });
        let text = describe(&lease, &Related::default());
        assert!(text.contains("Kind:         Lease\nSpec:\n"), "{text}");
        assert!(text.contains("  Holder Identity:         n1\n"), "{text}");
        assert!(text.contains("  Lease Duration Seconds:  40\n"), "{text}");
    }
}
