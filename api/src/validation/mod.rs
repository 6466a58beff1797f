//! Validation helpers shared by every kind: name rules (DNS-1123), metadata,
//! and the constructors of field causes (`Required value`, `Invalid value`).

pub mod causes;
pub mod checks;
pub mod resources;
pub mod syntax;

use crate::error::Cause;
use crate::resource::ResourceInfo;
use crate::selector::{validate_label_key, validate_label_value};
use serde_json::Value;

/// Objects larger than this (in JSON bytes) are refused.
pub const MAX_OBJECT_BYTES: usize = 1_572_864;

/// `field: Required value`.
pub fn required(field: impl Into<String>) -> Cause {
    Cause { kind: "FieldValueRequired".into(), field: field.into(), message: "Required value".into() }
}

/// `field: Invalid value: "x": why`.
pub fn invalid(field: impl Into<String>, value: impl std::fmt::Display, why: &str) -> Cause {
    Cause {
        kind: "FieldValueInvalid".into(),
        field: field.into(),
        message: format!("Invalid value: \"{value}\": {why}"),
    }
}

/// `field: Unsupported value: "x": supported values: "a", "b"`.
pub fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Cause {
    let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
    Cause {
        kind: "FieldValueNotSupported".into(),
        field: field.into(),
        message: format!("Unsupported value: \"{value}\": supported values: {}", list.join(", ")),
    }
}

/// `field: Duplicate value: "x"`.
pub fn duplicate(field: impl Into<String>, value: &str) -> Cause {
    Cause { kind: "FieldValueDuplicate".into(), field: field.into(), message: format!("Duplicate value: \"{value}\"") }
}

/// `field: Forbidden: why`.
pub fn forbidden(field: impl Into<String>, why: &str) -> Cause {
    Cause { kind: "FieldValueForbidden".into(), field: field.into(), message: format!("Forbidden: {why}") }
}

/// A DNS-1123 label: at most 63 lower-case alphanumerics or '-', starting and
/// ending with an alphanumeric.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// A DNS-1123 subdomain: at most 253 characters, dot-separated DNS-1123 labels.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

pub(crate) const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')";
pub(crate) const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name')";

/// Which name rule a kind's object names follow.
fn name_is_label(info: &ResourceInfo) -> bool {
    matches!(info.kind, "Namespace" | "Service")
}

/// Checks a name against its kind's rule; `None` when valid.
pub fn name_problem(info: &ResourceInfo, name: &str) -> Option<&'static str> {
    if name_is_label(info) {
        (!is_dns1123_label(name)).then_some(LABEL_MSG)
    } else if info.kind == "Event" || info.group == "rbac.authorization.k8s.io" {
        // Event names carry timestamps and dots, RBAC names colons
        // (`system:node`); any path segment name is fine.
        (name.contains('/') || name.contains('%') || name == "." || name == "..")
            .then_some("may not contain '/' or '%' and may not be '.' or '..'")
    } else {
        (!is_dns1123_subdomain(name)).then_some(SUBDOMAIN_MSG)
    }
}

/// Generic metadata rules for a new or updated object: name (or
/// generateName), namespace presence by scope, label and annotation syntax.
pub fn object_meta(obj: &Value, info: &ResourceInfo) -> Vec<Cause> {
    let mut causes = Vec::new();
    let meta = obj.get("metadata").unwrap_or(&Value::Null);
    let name = meta.get("name").and_then(Value::as_str).unwrap_or_default();
    let generate = meta.get("generateName").and_then(Value::as_str).unwrap_or_default();
    if name.is_empty() {
        if generate.is_empty() {
            causes.push(required("metadata.name").with_message("name or generateName is required"));
        }
    } else if let Some(why) = name_problem(info, name) {
        causes.push(invalid("metadata.name", name, why));
    }
    let namespace = meta.get("namespace").and_then(Value::as_str).unwrap_or_default();
    if !info.namespaced && !namespace.is_empty() {
        causes.push(forbidden("metadata.namespace", "not allowed on this type"));
    }
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Err(why) = validate_label_key(k) {
                causes.push(invalid("metadata.labels", k, &why));
            }
            match v.as_str() {
                Some(v) => {
                    if let Err(why) = validate_label_value(v) {
                        causes.push(invalid(format!("metadata.labels[{k}]"), v, &why));
                    }
                }
                None => causes.push(invalid(format!("metadata.labels[{k}]"), v, "label values must be strings")),
            }
        }
    }
    if let Some(annotations) = meta.get("annotations").and_then(Value::as_object) {
        let mut total = 0;
        for (k, v) in annotations {
            if let Err(why) = validate_label_key(k) {
                causes.push(invalid("metadata.annotations", k, &why));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            causes.push(Cause {
                kind: "FieldValueTooLong".into(),
                field: "metadata.annotations".into(),
                message: "Too long: must have at most 262144 bytes".into(),
            });
        }
    }
    causes
}

/// Metadata rules for an update: name, namespace, uid and creationTimestamp
/// may not change.
pub fn object_meta_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    for field in ["name", "namespace", "uid", "creationTimestamp"] {
        let ptr = format!("/metadata/{field}");
        let n = new.pointer(&ptr).and_then(Value::as_str).unwrap_or_default();
        let o = old.pointer(&ptr).and_then(Value::as_str).unwrap_or_default();
        if !n.is_empty() && n != o {
            causes.push(invalid(format!("metadata.{field}"), n, "field is immutable"));
        }
    }
    causes
}

impl Cause {
    /// The same cause with another message.
    pub fn with_message(mut self, message: &str) -> Cause {
        self.message = message.into();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::lookup;
    use serde_json::json;

    #[test]
    fn dns_names() {
        assert!(is_dns1123_label("web-1"));
        assert!(!is_dns1123_label("Web"));
        assert!(!is_dns1123_label("-web"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_subdomain("web.example.com"));
        assert!(!is_dns1123_subdomain("web..com"));
    }

    #[test]
    fn metadata_problems_name_their_field() {
        let pods = lookup("pods").expect("pods");
        let causes =
            object_meta(&json!({"metadata": {"name": "Bad_Name", "labels": {"ok": "yes", "bad key!": "x"}}}), pods);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["metadata.name", "metadata.labels"]);
        let causes = object_meta(&json!({"metadata": {}}), pods);
        assert_eq!(causes[0].field, "metadata.name");
        let nodes = lookup("nodes").expect("nodes");
        let causes = object_meta(&json!({"metadata": {"name": "n", "namespace": "x"}}), nodes);
        assert_eq!(causes[0].field, "metadata.namespace");
    }
}
