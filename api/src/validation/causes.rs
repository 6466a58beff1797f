//! Cause constructors beyond the basic ones in [`crate::validation`]:
//! values that are not strings (`Invalid value: 70000`), references that
//! lead nowhere (`Not found`), size limits and immutable fields.

use crate::error::Cause;
use serde_json::Value;

/// `field: Invalid value: <value>: why`, where numbers, booleans, maps and
/// lists are shown as JSON and strings in quotes, as Kubernetes does.
pub fn invalid_value(field: impl Into<String>, value: impl Into<Value>, why: &str) -> Cause {
    let value: Value = value.into();
    Cause { kind: "FieldValueInvalid".into(), field: field.into(), message: format!("Invalid value: {value}: {why}") }
}

/// `field: Required value: detail`.
pub fn required_because(field: impl Into<String>, detail: &str) -> Cause {
    Cause { kind: "FieldValueRequired".into(), field: field.into(), message: format!("Required value: {detail}") }
}

/// `field: Not found: "value"` — a reference to something that does not
/// exist (a volume mount naming no volume).
pub fn not_found(field: impl Into<String>, value: &str) -> Cause {
    Cause { kind: "FieldValueNotFound".into(), field: field.into(), message: format!("Not found: \"{value}\"") }
}

/// `field: Duplicate value: <value>` for values that are not plain strings.
pub fn duplicate_value(field: impl Into<String>, value: impl Into<Value>) -> Cause {
    let value: Value = value.into();
    Cause { kind: "FieldValueDuplicate".into(), field: field.into(), message: format!("Duplicate value: {value}") }
}

/// `field: Too long: must have at most N bytes`.
pub fn too_long(field: impl Into<String>, max_bytes: usize) -> Cause {
    Cause {
        kind: "FieldValueTooLong".into(),
        field: field.into(),
        message: format!("Too long: must have at most {max_bytes} bytes"),
    }
}

/// `field: Too many: N: must have at most M items`.
pub fn too_many(field: impl Into<String>, actual: usize, max: usize) -> Cause {
    Cause {
        kind: "FieldValueTooMany".into(),
        field: field.into(),
        message: format!("Too many: {actual}: must have at most {max} items"),
    }
}

/// `field: Invalid value: <new value>: field is immutable`.
pub fn immutable(field: impl Into<String>, new_value: impl Into<Value>) -> Cause {
    invalid_value(field, new_value, "field is immutable")
}

/// The JSON form of any serialisable value, for [`invalid_value`] and
/// [`immutable`] (Null if it cannot be encoded).
pub fn json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_unquoted_and_strings_quoted() {
        assert_eq!(
            invalid_value("spec.replicas", -1, "must be greater than or equal to 0").message,
            "Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(invalid_value("spec.x", "a", "bad").message, "Invalid value: \"a\": bad");
        let map = json(&std::collections::BTreeMap::from([("app", "web")]));
        assert_eq!(immutable("spec.selector", map).message, "Invalid value: {\"app\":\"web\"}: field is immutable");
        assert_eq!(not_found("spec.containers[0].volumeMounts[0].name", "data").kind, "FieldValueNotFound");
        assert_eq!(required_because("spec.x", "why").message, "Required value: why");
    }
}
