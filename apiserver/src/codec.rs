//! How objects are laid out in etcd, and how resourceVersion gets into them.
//!
//! Stored JSON always starts `{"apiVersion":…,"kind":…,"metadata":{` and never
//! carries `metadata.resourceVersion`: the version is the etcd mod_revision,
//! spliced into the bytes on the way out. Get, List and Watch therefore hand
//! out stored bytes without parsing them.

use bytes::Bytes;
use rkube_api::{ApiError, Result};
use serde_json::{Map, Value};

const METADATA: &[u8] = b"\"metadata\":{";

/// Serializes an object for storage: apiVersion, kind, metadata first, the
/// rest after; metadata.resourceVersion removed.
pub fn encode(obj: &Value) -> Result<Vec<u8>> {
    let map = obj.as_object().ok_or_else(|| ApiError::internal("object to store is not a JSON object"))?;
    let mut out = Vec::with_capacity(1024);
    out.push(b'{');
    let mut first = true;
    let mut put = |out: &mut Vec<u8>, k: &str, v: &Value| -> Result<()> {
        if !first {
            out.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut *out, k).map_err(|e| ApiError::internal(e.to_string()))?;
        out.push(b':');
        serde_json::to_writer(&mut *out, v).map_err(|e| ApiError::internal(e.to_string()))
    };
    for k in ["apiVersion", "kind"] {
        put(&mut out, k, map.get(k).unwrap_or(&Value::Null))?;
    }
    // metadata without resourceVersion, written without copying the map.
    out.extend_from_slice(b",\"metadata\":{");
    let mut first_field = true;
    for (k, v) in map.get("metadata").and_then(Value::as_object).into_iter().flatten() {
        if k == "resourceVersion" {
            continue;
        }
        if !first_field {
            out.push(b',');
        }
        first_field = false;
        serde_json::to_writer(&mut out, k).map_err(|e| ApiError::internal(e.to_string()))?;
        out.push(b':');
        serde_json::to_writer(&mut out, v).map_err(|e| ApiError::internal(e.to_string()))?;
    }
    out.push(b'}');
    for (k, v) in map {
        if !matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            put(&mut out, k, v)?;
        }
    }
    out.push(b'}');
    Ok(out)
}

/// The stored bytes with `metadata.resourceVersion` set to `rv`.
pub fn with_resource_version(stored: &[u8], rv: i64) -> Bytes {
    let rv_field = format!("\"resourceVersion\":\"{rv}\"");
    // In our own layout only the apiVersion and kind strings come before
    // metadata, so the first `"metadata":{` is the top-level one.
    let ours = stored.starts_with(b"{\"apiVersion\":");
    if let Some(pos) = find(stored, METADATA).filter(|_| ours) {
        let at = pos + METADATA.len();
        let empty = stored.get(at) == Some(&b'}');
        let mut out = Vec::with_capacity(stored.len() + rv_field.len() + 1);
        out.extend_from_slice(&stored[..at]);
        out.extend_from_slice(rv_field.as_bytes());
        if !empty {
            out.push(b',');
        }
        out.extend_from_slice(&stored[at..]);
        return Bytes::from(out);
    }
    // Not written by `encode` (e.g. put there by hand): parse and set.
    match serde_json::from_slice::<Value>(stored) {
        Ok(mut v) => {
            set_resource_version(&mut v, rv);
            Bytes::from(serde_json::to_vec(&v).unwrap_or_else(|_| stored.to_vec()))
        }
        Err(_) => Bytes::copy_from_slice(stored),
    }
}

/// Sets metadata.resourceVersion on a parsed object.
pub fn set_resource_version(obj: &mut Value, rv: i64) {
    if let Some(map) = obj.as_object_mut() {
        let meta = map.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
    }
}

/// Parses stored bytes.
pub fn decode(stored: &[u8]) -> Result<Value> {
    serde_json::from_slice(stored).map_err(|e| ApiError::internal(format!("stored object is not valid JSON: {e}")))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The namespace and name encoded in a key under `prefix`.
pub fn key_parts<'a>(key: &'a str, prefix: &str, namespaced: bool) -> (&'a str, &'a str) {
    let rest = key.strip_prefix(prefix).unwrap_or(key);
    if namespaced { rest.split_once('/').unwrap_or(("", rest)) } else { ("", rest) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_objects_get_their_resource_version_spliced_in() {
        let obj = json!({"spec": {"x": 1}, "kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "a", "resourceVersion": "7"}});
        let stored = encode(&obj).expect("encodes");
        assert!(stored.starts_with(br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"}"#));
        let out: Value = serde_json::from_slice(&with_resource_version(&stored, 42)).expect("valid JSON");
        assert_eq!(out["metadata"]["resourceVersion"], "42");
        assert_eq!(out["metadata"]["name"], "a");
        assert_eq!(out["spec"]["x"], 1);
    }

    #[test]
    fn empty_metadata_still_gets_a_version() {
        let stored = encode(&json!({"apiVersion": "v1", "kind": "X"})).expect("encodes");
        let out: Value = serde_json::from_slice(&with_resource_version(&stored, 3)).expect("valid JSON");
        assert_eq!(out["metadata"]["resourceVersion"], "3");
    }

    #[test]
    fn foreign_json_is_parsed_and_set() {
        let out: Value =
            serde_json::from_slice(&with_resource_version(br#"{"kind":"X","apiVersion":"v1"}"#, 5)).expect("valid");
        assert_eq!(out["metadata"]["resourceVersion"], "5");
    }

    #[test]
    fn keys_split_into_namespace_and_name() {
        assert_eq!(key_parts("/registry/pods/default/web", "/registry/pods/", true), ("default", "web"));
        assert_eq!(key_parts("/registry/nodes/n1", "/registry/nodes/", false), ("", "n1"));
    }
}
