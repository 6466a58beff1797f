//! Reading manifests: multi-document YAML or JSON, `v1 List` expansion, and
//! strict typed decoding that names unknown fields by their full path
//! (`unknown field "spec.containers[0].imagee"`).

use crate::error::{ApiError, Result};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Splits a YAML or JSON text into its documents, each as a JSON value.
///
/// Empty documents are skipped; a `kind: List` document is expanded into its
/// items. A document that does not parse is returned as an error in its place,
/// so one bad document does not hide the others' results.
pub fn parse_documents(text: &str) -> Vec<Result<Value>> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        match Value::deserialize(doc) {
            Ok(Value::Null) => {}
            Ok(Value::Object(map)) => {
                let is_list =
                    map.get("kind").and_then(Value::as_str).is_some_and(|k| k == "List" || k.ends_with("List"))
                        && map.get("items").is_some_and(Value::is_array);
                if is_list {
                    if let Some(Value::Array(items)) = map.get("items") {
                        out.extend(items.iter().cloned().map(Ok));
                    }
                } else {
                    out.push(Ok(Value::Object(map)));
                }
            }
            Ok(other) => out.push(Err(ApiError::bad_request(format!(
                "document {}: expected an object with apiVersion and kind, found {}",
                i + 1,
                json_type(&other)
            )))),
            Err(e) => {
                out.push(Err(ApiError::bad_request(format!("document {}: error parsing YAML/JSON: {e}", i + 1))));
                // A syntax error ends the stream: the parser cannot resynchronise.
                break;
            }
        }
    }
    out
}

/// Parses one object body (JSON, or YAML for convenience).
pub fn parse_object(bytes: &[u8]) -> Result<Value> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let value: Value = if first == Some(&b'{') {
        serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))?
    } else {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| ApiError::bad_request("request body is neither JSON nor UTF-8 YAML"))?;
        serde_yaml_ng::from_str(text).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(format!("expected a JSON object, found {}", json_type(&value))));
    }
    Ok(value)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Decodes `value` into `K`, refusing unknown fields and naming the path of
/// the first field that is unknown or of the wrong type.
///
/// `what` names the target in messages, e.g. `Pod in version "v1"`.
pub fn decode_strict<K: DeserializeOwned>(value: &Value, what: &str, kind: &str) -> Result<K> {
    let mut unknown: Vec<String> = Vec::new();
    let mut on_unknown = |path: serde_ignored::Path<'_>| unknown.push(field_path(&path));
    let de = serde_ignored::Deserializer::new(value, &mut on_unknown);
    let decoded: std::result::Result<K, _> = serde_path_to_error::deserialize(de);
    let prefix = format!("{what} cannot be handled as a {kind}");
    match decoded {
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let msg = if path == "." || path.is_empty() {
                format!("{prefix}: {inner}")
            } else {
                format!("{prefix}: {path}: {inner}")
            };
            Err(ApiError::bad_request(msg))
        }
        Ok(_) if !unknown.is_empty() => {
            let list: Vec<String> = unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect();
            Err(ApiError::bad_request(format!("{prefix}: strict decoding error: {}", list.join(", "))))
        }
        Ok(k) => Ok(k),
    }
}

/// What a write does with fields its kind does not have (the
/// `fieldValidation` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Refuse the request, naming every unknown field (rkube's gRPC API,
    /// and kubectl's default when the server publishes OpenAPI).
    #[default]
    Strict,
    /// Drop unknown fields and say so in `Warning` headers (Kubernetes'
    /// default when a REST client does not ask).
    Warn,
    /// Drop unknown fields silently.
    Ignore,
}

impl FieldValidation {
    /// Parses `fieldValidation`; "" is Kubernetes' default, Warn.
    pub fn parse(value: &str) -> Result<FieldValidation> {
        match value {
            "Strict" => Ok(FieldValidation::Strict),
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation: invalid value \"{other}\": use Ignore, Warn or Strict"
            ))),
        }
    }
}

/// Removes from `value` the fields `K` does not have and returns their
/// paths (`spec.containers[0].imagee`). Type errors are left for the strict
/// decode that follows to report.
pub fn drop_unknown_fields<K: DeserializeOwned>(value: &mut Value) -> Vec<String> {
    let mut found: Vec<(String, Vec<Segment>)> = Vec::new();
    {
        let mut on_unknown = |path: serde_ignored::Path<'_>| {
            let mut segments = Vec::new();
            segments_of(&path, &mut segments);
            found.push((field_path(&path), segments));
        };
        let de = serde_ignored::Deserializer::new(&*value, &mut on_unknown);
        let _: std::result::Result<K, _> = K::deserialize(de);
    }
    for (_, segments) in &found {
        remove_at(value, segments);
    }
    found.into_iter().map(|(path, _)| path).collect()
}

/// One step of a path into a JSON value.
enum Segment {
    Key(String),
    Index(usize),
}

fn segments_of(path: &serde_ignored::Path<'_>, out: &mut Vec<Segment>) {
    use serde_ignored::Path;
    match path {
        Path::Root => {}
        Path::Seq { parent, index } => {
            segments_of(parent, out);
            out.push(Segment::Index(*index));
        }
        Path::Map { parent, key } => {
            segments_of(parent, out);
            out.push(Segment::Key(key.clone()));
        }
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            segments_of(parent, out)
        }
    }
}

fn remove_at(value: &mut Value, segments: &[Segment]) {
    let Some((last, parents)) = segments.split_last() else { return };
    let mut at = value;
    for s in parents {
        let next = match s {
            Segment::Key(k) => at.get_mut(k.as_str()),
            Segment::Index(i) => at.get_mut(*i),
        };
        match next {
            Some(v) => at = v,
            None => return,
        }
    }
    if let (Segment::Key(k), Some(map)) = (last, at.as_object_mut()) {
        map.remove(k);
    }
}

/// Renders a serde_ignored path the way Kubernetes writes field paths.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => {
            let p = field_path(parent);
            if p.is_empty() { key.clone() } else { format!("{p}.{key}") }
        }
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    #[test]
    fn names_the_full_path_of_an_unknown_field() {
        let v = parse_object(
            br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{"containers":[{"name":"c","imagee":"x"}]}}"#,
        )
        .expect("parses");
        let e = decode_strict::<Pod>(&v, "Pod in version \"v1\"", "Pod").expect_err("unknown field");
        assert!(e.message.contains("unknown field \"spec.containers[0].imagee\""), "{}", e.message);
    }

    #[test]
    fn unknown_fields_are_dropped_and_named_and_known_ones_kept() {
        let mut v = parse_object(
            br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","colour":"red"},"spec":{"containers":[{"name":"c","image":"x"},{"name":"d","imagee":"y"}]}}"#,
        )
        .expect("parses");
        let dropped = drop_unknown_fields::<Pod>(&mut v);
        assert_eq!(dropped, ["metadata.colour", "spec.containers[1].imagee"]);
        assert_eq!(v["spec"]["containers"][1], serde_json::json!({"name": "d"}));
        assert_eq!(v["spec"]["containers"][0]["image"], "x");
        assert!(decode_strict::<Pod>(&v, "Pod", "Pod").is_ok());
        assert_eq!(FieldValidation::parse("").expect("default"), FieldValidation::Warn);
        assert!(FieldValidation::parse("Loose").expect_err("bad").message.contains("fieldValidation"));
    }

    #[test]
    fn names_the_path_of_a_wrongly_typed_field() {
        let v = parse_object(
            b"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    ports:\n    - containerPort: eighty\n",
        )
        .expect("parses");
        let e = decode_strict::<Pod>(&v, "Pod in version \"v1\"", "Pod").expect_err("bad type");
        assert!(e.message.contains("spec.containers[0].ports[0].containerPort"), "{}", e.message);
    }

    #[test]
    fn splits_documents_and_expands_lists() {
        let docs = parse_documents(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}\n",
        );
        let names: Vec<String> =
            docs.into_iter().map(|d| d.expect("ok")["metadata"]["name"].as_str().expect("name").to_string()).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn a_broken_document_is_reported_in_its_place() {
        let docs = parse_documents("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n- just\n- a list\n");
        assert!(docs[0].is_ok());
        assert!(docs[1].as_ref().expect_err("not an object").message.contains("document 2"));
    }
}
