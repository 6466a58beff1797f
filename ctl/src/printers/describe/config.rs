//! `describe configmap` (kubectl 1.32's layout: each key, a `----` line,
//! the value) and `describe secret` (sizes only).

use super::{Related, Writer, annotations, events, labels, w};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};

/// The description of a config map.
pub fn config_map(cm: &ConfigMap, related: &Related) -> String {
    let mut w = Writer::default();
    w!(w, 0, "Name:\t{}\n", cm.metadata.name.clone().unwrap_or_default());
    w!(w, 0, "Namespace:\t{}\n", cm.metadata.namespace.clone().unwrap_or_default());
    labels(&mut w, "Labels", cm.metadata.labels.as_ref());
    annotations(&mut w, "Annotations", cm.metadata.annotations.as_ref());
    w!(w, 0, "\nData\n====\n");
    for (k, v) in cm.data.iter().flatten() {
        w!(w, 0, "{k}:\n----\n");
        w!(w, 0, "{v}\n");
        w!(w, 0, "\n");
    }
    w!(w, 0, "\nBinaryData\n====\n");
    for (k, v) in cm.binary_data.iter().flatten() {
        w!(w, 0, "{k}: {} bytes\n", v.0.len());
    }
    w!(w, 0, "\n");
    events(&mut w, related.events.as_ref());
    w.finish()
}

/// The description of a secret: its keys and their sizes, never the values.
pub fn secret(s: &Secret, related: &Related) -> String {
    let mut w = Writer::default();
    w!(w, 0, "Name:\t{}\n", s.metadata.name.clone().unwrap_or_default());
    w!(w, 0, "Namespace:\t{}\n", s.metadata.namespace.clone().unwrap_or_default());
    labels(&mut w, "Labels", s.metadata.labels.as_ref());
    annotations(&mut w, "Annotations", s.metadata.annotations.as_ref());
    let kind = s.type_.clone().unwrap_or_else(|| "Opaque".into());
    w!(w, 0, "\nType:\t{kind}\n");
    w!(w, 0, "\nData\n====\n");
    for (k, v) in s.data.iter().flatten() {
        if k == "token" && kind == "kubernetes.io/service-account-token" {
            w!(w, 0, "{k}:\t{}\n", String::from_utf8_lossy(&v.0));
        } else {
            w!(w, 0, "{k}:\t{} bytes\n", v.0.len());
        }
    }
    events(&mut w, related.events.as_ref());
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_map_shows_each_key_and_value() {
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "cm-appvars", "namespace": "default"},
            "data": {"apploglevel": "info", "appdatadir": "/var/data"},
        }))
        .expect("configmap");
        let text = config_map(&cm, &Related { events: Some(vec![]), ..Default::default() });
        assert_eq!(
            text,
            "\
Name:         cm-appvars
Namespace:    default
Labels:       <none>
Annotations:  <none>

Data
====
appdatadir:
----
/var/data

apploglevel:
----
info


BinaryData
====

Events:  <none>
"
        );
    }

    #[test]
    fn secret_shows_sizes_not_values() {
        let s: Secret = serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "default"},
            "data": {"password": "c2VjcmV0"},
        }))
        .expect("secret");
        let text = secret(&s, &Related::default());
        assert!(text.contains("Type:  Opaque"), "{text}");
        assert!(text.contains("password:  6 bytes"), "{text}");
        assert!(!text.contains("secret\n"), "{text}");
    }
}
