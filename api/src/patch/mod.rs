//! Patches: RFC 7386 JSON merge patch, RFC 6902 JSON patch and Kubernetes'
//! strategic merge patch ([`strategic_merge_patch`]), with the table of list
//! merge keys and strategies it shares with rkubectl's client-side apply
//! ([`merge_keys`]).

pub mod merge_keys;
mod strategic;

pub use merge_keys::{ListStrategy, list_strategy, merge_key, retains_keys};
pub use strategic::strategic_merge_patch;

use crate::error::{ApiError, Result};
use serde_json::Value;

/// Applies an RFC 7386 merge patch: objects merge recursively, `null`
/// removes a key, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let map = target.as_object_mut().expect("made an object above");
    for (k, v) in patch_map {
        if v.is_null() {
            map.remove(k);
        } else {
            merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// Applies an RFC 6902 JSON patch (add, remove, replace, move, copy, test).
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<()> {
    let ops = patch.as_array().ok_or_else(|| ApiError::bad_request("a JSON patch must be a list of operations"))?;
    for (i, op) in ops.iter().enumerate() {
        let field = |name: &str| -> Result<&str> {
            op.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request(format!("JSON patch operation {i}: missing \"{name}\"")))
        };
        let path = field("path")?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| ApiError::bad_request(format!("JSON patch operation {i}: missing \"value\"")))
        };
        match field("op")? {
            "add" => add(target, path, value()?)?,
            "remove" => {
                remove(target, path)?;
            }
            "replace" => {
                remove(target, path)?;
                add(target, path, value()?)?;
            }
            "move" => {
                let v = remove(target, field("from")?)?;
                add(target, path, v)?;
            }
            "copy" => {
                let v = target
                    .pointer(field("from")?)
                    .cloned()
                    .ok_or_else(|| ApiError::bad_request(format!("JSON patch operation {i}: \"from\" not found")))?;
                add(target, path, v)?;
            }
            "test" => {
                if target.pointer(path) != Some(&value()?) {
                    return Err(ApiError::new(
                        crate::error::Reason::Invalid,
                        format!("JSON patch operation {i}: test failed at {path}"),
                    ));
                }
            }
            other => return Err(ApiError::bad_request(format!("JSON patch operation {i}: unknown op \"{other}\""))),
        }
    }
    Ok(())
}

fn split(path: &str) -> Result<(&str, String)> {
    let idx = path.rfind('/').ok_or_else(|| ApiError::bad_request(format!("invalid JSON pointer \"{path}\"")))?;
    let last = path[idx + 1..].replace("~1", "/").replace("~0", "~");
    Ok((&path[..idx], last))
}

fn add(target: &mut Value, path: &str, v: Value) -> Result<()> {
    if path.is_empty() {
        *target = v;
        return Ok(());
    }
    let (parent, last) = split(path)?;
    let not_found = || ApiError::bad_request(format!("JSON patch: path \"{path}\" not found"));
    match target.pointer_mut(parent).ok_or_else(not_found)? {
        Value::Object(m) => {
            m.insert(last, v);
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(v);
            } else {
                let i: usize = last.parse().map_err(|_| not_found())?;
                if i > a.len() {
                    return Err(not_found());
                }
                a.insert(i, v);
            }
        }
        _ => return Err(not_found()),
    }
    Ok(())
}

fn remove(target: &mut Value, path: &str) -> Result<Value> {
    let (parent, last) = split(path)?;
    let not_found = || ApiError::bad_request(format!("JSON patch: path \"{path}\" not found"));
    match target.pointer_mut(parent).ok_or_else(not_found)? {
        Value::Object(m) => m.remove(&last).ok_or_else(not_found),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| not_found())?;
            if i >= a.len() {
                return Err(not_found());
            }
            Ok(a.remove(i))
        }
        _ => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}, "l": [3], "n": {"x": 1}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}, "l": [3], "n": {"x": 1}}));
    }

    #[test]
    fn json_patch_applies_operations_in_order() {
        let mut doc = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"list": [1, 2]}});
        json_patch(
            &mut doc,
            &json!([
                {"op": "add", "path": "/metadata/labels/b", "value": "2"},
                {"op": "remove", "path": "/metadata/labels/a"},
                {"op": "replace", "path": "/spec/list/0", "value": 9},
                {"op": "add", "path": "/spec/list/-", "value": 3},
                {"op": "test", "path": "/spec/list/2", "value": 3}
            ]),
        )
        .expect("applies");
        assert_eq!(doc, json!({"metadata": {"labels": {"b": "2"}}, "spec": {"list": [9, 2, 3]}}));
        assert!(json_patch(&mut doc, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }
}
